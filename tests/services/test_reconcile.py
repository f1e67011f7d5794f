"""Reconciliation (orders.services.reconcile): what a drainer does with an order a previous holder left in flight."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Account, Order, OrderStatus, PaperOrder
from orders.services import drain
from tests.helpers import submit

pytestmark = pytest.mark.django_db


def in_flight(order: Order, *, status=OrderStatus.UNKNOWN, deadline_in: float, **fields) -> Order:
    """The order as a previous holder left it: sent with a deadline `deadline_in` s away."""
    Order.objects.filter(pk=order.pk).update(
        status=status, sent=True, attempts=1, deadline_at=timezone.now() + timedelta(seconds=deadline_in), **fields
    )
    order.refresh_from_db()
    return order


def test_it_never_sends_an_absent_order_again_before_its_deadline_has_passed(accounts, settings):
    order = submit()
    order = in_flight(order, deadline_in=0.8)
    first_deadline = order.deadline_at
    margin = timedelta(seconds=settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"])

    assert drain.drain_account(account_id="account_main") == 0  # in flight: settled, not taken

    order.refresh_from_db()
    assert order.status == OrderStatus.SUCCESS and order.attempts == 2
    [placed] = PaperOrder.objects.filter(client_order_id=order.client_order_id)
    # Absent at first, but the first request could still have been processed until its
    # deadline: the re-send left only after the deadline plus the clock margin.
    assert placed.started >= (first_deadline + margin).timestamp()
    assert order.deadline_at > first_deadline


def test_it_records_an_order_found_in_flight_without_sending_it_again(accounts):
    order = submit()
    from orders.exchanges import get_exchange as exchange_of
    from orders.services.reconcile import ticket_for

    account = Account.objects.get(pk="account_main")
    exchange_of(account).place_order(ticket_for(order), deadline_ms=int(timezone.now().timestamp() * 1000) + 5000)
    order = in_flight(order, deadline_in=5, status=OrderStatus.PROCESSING)

    drain.drain_account(account_id="account_main")

    order.refresh_from_db()
    assert order.status == OrderStatus.SUCCESS and order.order_id
    assert PaperOrder.objects.filter(client_order_id=order.client_order_id).count() == 1


def test_it_expires_an_unknown_order_absent_after_its_deadline_once_it_is_too_old(accounts):
    order = submit(expires_in=60)
    order = in_flight(order, deadline_in=-5, expires_at=timezone.now() - timedelta(seconds=1))

    drain.drain_account(account_id="account_main")

    order.refresh_from_db()
    assert (order.status, order.error_code) == (OrderStatus.EXPIRED, "expired")
    assert not PaperOrder.objects.exists()


def test_an_account_degraded_by_failing_look_ups_recovers_when_the_order_is_found(accounts, monkeypatch):
    from orders.exchanges import get_exchange as exchange_of
    from orders.exchanges.base import ExchangeError
    from orders.exchanges.paper import PaperExchange
    from orders.services.reconcile import ticket_for

    order = submit()
    account = Account.objects.get(pk="account_main")
    exchange_of(account).place_order(ticket_for(order), deadline_ms=int(timezone.now().timestamp() * 1000) + 5000)
    order = in_flight(order, deadline_in=5, status=OrderStatus.PROCESSING)
    real, failures = PaperExchange.fetch_order, []

    def unreachable_once(self, ticket):
        if not failures:
            failures.append(True)
            raise ExchangeError("Connection refused", code="connect")
        return real(self, ticket)

    monkeypatch.setattr(PaperExchange, "fetch_order", unreachable_once)

    drain.drain_account(account_id="account_main")

    order.refresh_from_db()
    assert failures and order.status == OrderStatus.SUCCESS
    account.refresh_from_db()
    assert account.degraded_since is None and account.degraded_reason == ""
