"""Cancel and retry, through the services, with in-process drains (paper and the OKX fake)."""

import json
import time
from decimal import Decimal

import django_q.tasks
import pytest

from orders.exchanges import get_exchange
from orders.models import Account, Order, OrderStatus, PaperOrder
from orders.services import drain, tracking, transitions
from orders.services.journal import journal_path
from orders.services.lifecycle import OrderConflict, order_cancel, order_retry
from tests.fakes.okx import FakeOKX
from tests.helpers import submit

KEY, SECRET, PASSPHRASE = "life-key", "life-secret", "life-pass"


@pytest.mark.django_db
def test_it_cancels_a_queued_order_which_then_never_reaches_the_exchange(accounts, django_capture_on_commit_callbacks):
    order = submit()

    with django_capture_on_commit_callbacks(execute=True):  # the journal line follows the commit
        cancelled = order_cancel(request_id=order.request_id)
    drain.drain_account(account_id="account_main")

    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert PaperOrder.objects.count() == 0
    [line] = journal_path(cancelled.finished_at).read_text().splitlines()
    assert json.loads(line)["status"] == "cancelled"


@pytest.mark.django_db
def test_it_refuses_to_cancel_an_order_a_worker_has_taken(accounts):
    order = submit()
    assert transitions.claim([order], actor=transitions.WORKER)

    with pytest.raises(OrderConflict, match="being sent"):
        order_cancel(request_id=order.request_id)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PROCESSING


@pytest.mark.django_db
def test_it_refuses_to_cancel_a_filled_order(accounts):
    order = submit()
    drain.drain_account(account_id="account_main")

    with pytest.raises(OrderConflict, match="success, filled on the exchange"):
        order_cancel(request_id=order.request_id)


@pytest.mark.django_db
def test_it_retries_a_failed_order_as_a_new_linked_order_once(accounts):
    failed = submit(account="account_spot", symbol="BTC/USDT", amount=Decimal("50"))  # above max_amount 10
    drain.drain_account(account_id="account_spot")
    failed.refresh_from_db()
    assert failed.status == OrderStatus.FAILED

    retry = order_retry(request_id=failed.request_id)

    assert retry.request_id != failed.request_id
    assert retry.retry_of_id == failed.pk
    assert (retry.status, retry.symbol, retry.amount, retry.account_id) == (
        OrderStatus.QUEUED, "BTC/USDT", Decimal("50"), "account_spot",
    )  # fmt: skip
    with pytest.raises(OrderConflict, match=f"already retried as {retry.request_id}"):
        order_retry(request_id=failed.request_id)
    assert Order.objects.filter(retry_of=failed).count() == 1


@pytest.mark.django_db
def test_it_refuses_to_retry_an_order_that_did_not_fail(accounts):
    order = submit()

    with pytest.raises(OrderConflict, match="is queued: only failed or expired"):
        order_retry(request_id=order.request_id)
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_a_retry_on_an_account_that_can_no_longer_trade(accounts):
    failed = submit(account="account_spot", symbol="BTC/USDT", amount=Decimal("50"))
    drain.drain_account(account_id="account_spot")
    Account.objects.filter(pk="account_spot").update(enabled=False)

    with pytest.raises(OrderConflict, match="disabled"):
        order_retry(request_id=failed.request_id)
    assert Order.objects.count() == 1


@pytest.fixture
def okx_account(db, monkeypatch):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True) as fake:
        for name, value in (("LIFE_KEY", KEY), ("LIFE_SECRET", SECRET), ("LIFE_PASS", PASSPHRASE)):
            monkeypatch.setenv(name, value)
        Account.objects.create(
            id="okx_life", mode="demo", api_key_env="LIFE_KEY", secret_env="LIFE_SECRET", passphrase_env="LIFE_PASS",
            base_url=fake.base_url, default_leverage=5, options={"timeout_ms": 2000},
        )  # fmt: skip
        yield fake


def test_it_fetches_the_fill_details_of_a_market_order_after_placing_it(okx_account):
    order = submit(account="okx_life")
    drain.drain_account(account_id="okx_life")
    order.refresh_from_db()
    assert (order.status, order.exchange_state, order.filled_amount) == (OrderStatus.SUCCESS, "submitted", None)

    assert tracking.track_open_orders(account_id="okx_life") == 1

    order.refresh_from_db()
    assert (order.exchange_state, order.filled_amount, order.average_price) == (
        "filled",
        Decimal("0.001"),
        Decimal("65000"),
    )
    assert order.fee > 0 and order.fee_currency == "USDT"


def test_it_settles_the_fills_of_many_orders_in_a_few_requests(okx_account):
    fake = okx_account
    orders = [submit(account="okx_life", symbol=symbol) for symbol in ["BTC/USDT:USDT", "BTC/USDT"] * 15]
    resting = submit(account="okx_life", order_type="limit", price=Decimal("60000"))
    drain.drain_account(account_id="okx_life")
    fake.reset_stats()

    assert tracking.track_open_orders(account_id="okx_life") == 31

    # Open orders, then the order history of each market type (swap, spot): no look-up per order.
    assert sorted(r["path"] for r in fake.requests_log) == [
        "trade/orders-history", "trade/orders-history", "trade/orders-pending",
    ]  # fmt: skip
    states = dict(Order.objects.values_list("request_id", "exchange_state"))
    assert {states[o.request_id] for o in orders} == {"filled"} and states[resting.request_id] == "open"
    assert not Order.objects.filter(filled_amount__isnull=True).exclude(pk=resting.pk).exists()


def test_it_asks_for_the_fills_once_more_after_the_last_order_of_a_burst(okx_account, monkeypatch):
    monkeypatch.setattr(tracking, "_tracking_asked", {})
    monkeypatch.setattr(tracking, "_tracking_owed", set())
    asked = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda func, *args, **kwargs: asked.append((func, time.time())))
    orders = [submit(account="okx_life") for _ in range(5)]

    drain.drain_account(account_id="okx_life")

    track = [at for func, at in asked if func == "orders.tasks.track_open_orders"]
    last_finished = max(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("finished_at", flat=True))
    # One for the first fill (the others fold into it), one after the last.
    assert 1 <= len(track) <= 2
    assert max(track) >= last_finished.timestamp()


def test_it_looks_up_one_by_one_what_the_lists_do_not_show(okx_account):
    fake = okx_account
    order = submit(account="okx_life", order_type="limit", price=Decimal("60000"))
    drain.drain_account(account_id="okx_life")
    tracking.track_open_orders(account_id="okx_life")
    order.refresh_from_db()
    # Cancelled on OKX's own site: neither open nor among the filled orders any more.
    get_exchange(order.account).client.cancel_order(order.order_id, "BTC/USDT:USDT")
    fake.reset_stats()

    assert tracking.track_open_orders(account_id="okx_life") == 1

    order.refresh_from_db()
    assert order.exchange_state == "cancelled"
    assert [r["path"] for r in fake.requests_log].count("trade/order") == 1


def test_it_follows_a_resting_limit_order_until_filled(okx_account):
    fake = okx_account
    order = submit(account="okx_life", order_type="limit", price=Decimal("60000"))
    drain.drain_account(account_id="okx_life")
    order.refresh_from_db()
    assert (order.status, order.exchange_state) == (OrderStatus.SUCCESS, "submitted")

    assert tracking.track_open_orders(account_id="okx_life") == 1  # the first look-up: resting
    order.refresh_from_db()
    assert order.exchange_state == "open"
    assert tracking.track_open_orders(account_id="okx_life") == 0  # still open: nothing changed
    fake.fill(order.client_order_id, px="60000")
    assert tracking.track_open_orders(account_id="okx_life") == 1

    order.refresh_from_db()
    assert order.exchange_state == "filled"
    assert order.filled_amount == Decimal("0.001")
    assert order.average_price == Decimal("60000")
    assert order.exchange_checked_at is not None


def test_it_cancels_a_resting_order_on_the_exchange_through_the_drainer(okx_account):
    fake = okx_account
    order = submit(account="okx_life", order_type="limit", price=Decimal("60000"))
    drain.drain_account(account_id="okx_life")
    tracking.track_open_orders(account_id="okx_life")

    requested = order_cancel(request_id=order.request_id)
    assert requested.cancel_requested_at is not None
    assert fake.get_order(order.client_order_id)["state"] == "live"  # the web request itself sends nothing
    drain.drain_account(account_id="okx_life")

    order.refresh_from_db()
    assert (order.status, order.exchange_state, order.cancel_requested_at) == (OrderStatus.SUCCESS, "cancelled", None)
    assert fake.get_order(order.client_order_id)["state"] == "canceled"
