"""The drain loop and the account lease, in-process on paper accounts
(orders.services.drain, orders.services.lease). The cross-process guarantees are proven end to end in
tests/e2e/test_execution_cluster.py and tests/e2e/test_okx_cluster.py."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Account, Order, OrderStatus, PaperOrder
from orders.services import drain, transitions
from orders.services.controls import pause
from tests.helpers import submit

pytestmark = pytest.mark.django_db


def drain_queries(count: int, settings, **options) -> list[str]:
    """The statements one drain of `count` queued orders costs (the paper venue's own
    book left out), with the adapter warm."""
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "LEASE_SECONDS": 60, **options}
    submit()
    drain.drain_account(account_id="account_main")
    submit(count=count)
    with CaptureQueriesContext(connection) as queries:
        assert drain.drain_account(account_id="account_main") == count
    assert Order.objects.filter(status=OrderStatus.SUCCESS).count() == count + 1
    return [q["sql"] for q in queries if "orders_paperorder" not in q["sql"] and q["sql"].split()[0] in
            ("SELECT", "UPDATE", "INSERT", "DELETE")]  # fmt: skip


def test_it_executes_orders_one_per_request_in_eight_statements_each(accounts, settings):
    ours = drain_queries(20, settings, BATCH_SIZE=1)
    # Per order: next order (with the pause checks), claim and its event, the deadline
    # (with the lease check) in the claim's transaction, finish and its event with the
    # account's last success, the journal marks of the order before. Per drain: lease,
    # account, in-flight, housekeeping, etc.
    assert len(ours) <= 8 * 20 + 12, "\n".join(ours)


def test_it_executes_a_batch_of_twenty_in_a_few_statements(accounts, settings):
    ours = drain_queries(20, settings)
    book = dict(PaperOrder.objects.values_list("client_order_id", "exchange_order_id"))
    assert all(book[o.client_order_id] == o.order_id for o in Order.objects.all())  # each its own id
    # Next orders, claim (update, read back, events), deadline, finish (locked read,
    # update, events, last success), journal marks; plus the drain's own (lease,
    # account, in-flight, housekeeping): a few statements, not a few per order.
    assert len(ours) <= 20, "\n".join(ours)


def test_it_never_sends_an_order_that_expired_while_queued(accounts):
    late = submit(expires_in=60)
    fresh = submit()
    Order.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert drain.drain_account(account_id="account_main") == 1

    late.refresh_from_db()
    assert (late.status, late.error_code) == (OrderStatus.EXPIRED, "expired")
    assert list(PaperOrder.objects.values_list("client_order_id", flat=True)) == [fresh.client_order_id]


def test_it_stops_draining_when_the_account_is_paused_meanwhile(accounts, settings, monkeypatch):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "BATCH_SIZE": 1}  # one order per request
    orders = submit(count=3)
    from orders.exchanges.paper import PaperExchange

    real_place = PaperExchange.place_order

    def place_then_pause(self, ticket, *, deadline_ms):
        placed = real_place(self, ticket, deadline_ms=deadline_ms)
        Account.objects.filter(pk="account_main").update(paused=True)  # an operator, meanwhile
        return placed

    monkeypatch.setattr(PaperExchange, "place_order", place_then_pause)

    assert drain.drain_account(account_id="account_main") == 1

    assert [o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders]).order_by("id")] == [
        OrderStatus.SUCCESS,
        OrderStatus.QUEUED,
        OrderStatus.QUEUED,
    ]
    assert PaperOrder.objects.count() == 1


def test_it_sees_a_cancel_request_made_while_it_held_the_lease(accounts):
    order = submit()
    drain.drain_account(account_id="account_main")
    Order.objects.filter(pk=order.pk).update(exchange_state="open", cancel_requested_at=timezone.now())

    assert drain.has_runnable_orders(account_id="account_main")
    drain.drain_account(account_id="account_main")

    order.refresh_from_db()
    assert order.cancel_requested_at is None
    assert not drain.has_runnable_orders(account_id="account_main")


def test_it_lets_the_lease_run_out_when_interrupted_mid_send(accounts, monkeypatch):
    order = submit()
    from orders.exchanges.paper import PaperExchange

    def interrupted(self, ticket, *, deadline_ms):
        raise KeyboardInterrupt  # a task timeout or a signal, while the request may be out

    monkeypatch.setattr(PaperExchange, "place_order", interrupted)

    with pytest.raises(KeyboardInterrupt):
        drain.drain_account(account_id="account_main")

    account = Account.objects.get(pk="account_main")
    assert account.lease_owner and account.lease_until > timezone.now()  # not released
    order.refresh_from_db()
    assert (order.status, order.sent) == (OrderStatus.PROCESSING, True) and order.deadline_at is not None


def test_it_sends_a_portfolio_margin_batch_refused_as_a_whole_again_order_by_order(accounts):
    Account.objects.filter(pk="account_spot").update(options={"max_amount": 1, "portfolio_margin": True})
    orders = submit(count=3, account="account_spot", symbol="BTC/USDT", amount=Decimal("2"))  # each over the limit

    drain.drain_account(account_id="account_spot")

    for order in Order.objects.filter(pk__in=[o.pk for o in orders]):
        # Refused as a batch first (nothing placed), then each alone: its own verdict.
        assert (order.status, order.error_code, order.attempts) == (OrderStatus.FAILED, "paper_insufficient_funds", 2)
    assert not PaperOrder.objects.exists()


@pytest.fixture
def woken(monkeypatch) -> list[str]:
    """The accounts whose drainer was asked for (with either broker)."""
    asked = []
    monkeypatch.setattr(drain, "wake_account", asked.append)
    return asked


def test_a_submit_wakes_the_drainer_of_an_idle_account(accounts, woken):
    submit()

    assert woken == ["account_main"]


def test_an_order_queued_while_a_drainer_holds_the_lease_wakes_nobody_and_the_holder_takes_it(
    accounts, woken, monkeypatch
):
    arrived = []
    real = drain._drain_leased

    def order_arrives_once_the_queue_looked_empty(*, lease, stop_at):
        taken = real(lease=lease, stop_at=stop_at)
        if not arrived:
            arrived.append(submit())  # another client's order, before the holder releases
        return taken

    monkeypatch.setattr(drain, "_drain_leased", order_arrives_once_the_queue_looked_empty)

    assert drain.drain_account(account_id="account_main") == 1

    assert woken == []  # no task for a drainer already at work
    assert Order.objects.get(pk=arrived[0].pk).status == OrderStatus.SUCCESS


def test_it_takes_no_queued_order_of_an_account_paused_with_an_order_in_flight(accounts):
    first, second = submit(), submit()
    assert transitions.claim([first], actor=transitions.WORKER)
    pause(account_id="account_main", reason="stop now")

    drain.drain_account(account_id="account_main")

    assert Order.objects.get(pk=second.pk).status == OrderStatus.QUEUED
