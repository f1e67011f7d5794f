"""Fill tracking (orders.services.tracking): the exchange state, filled amount, price and fee of placed orders."""

import time
from decimal import Decimal

import django_q.tasks

from orders.exchanges import get_exchange
from orders.models import Order, OrderStatus
from orders.services import drain, tracking
from tests.helpers import submit


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
