"""Cancel and retry, through the services, with in-process drains (paper and the OKX fake)."""

import json
from decimal import Decimal

import pytest

from orders.models import Account, Order, OrderStatus, PaperOrder
from orders.services import drain, tracking, transitions
from orders.services.journal import journal_path
from orders.services.lifecycle import OrderConflict, order_cancel, order_retry
from tests.helpers import failed_order, submit


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
    failed = failed_order()

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
    failed = failed_order()
    Account.objects.filter(pk="account_spot").update(enabled=False)

    with pytest.raises(OrderConflict, match="disabled"):
        order_retry(request_id=failed.request_id)
    assert Order.objects.count() == 1


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
