"""POST /api/order-scheduler/orders/<request_id>/cancel (who may: tests/api/test_access_matrix.py)."""

import pytest

from orders.models import AuditEvent, Order, OrderStatus, PaperOrder
from orders.services import drain
from tests.helpers import submit

pytestmark = pytest.mark.django_db


def url(request_id: str) -> str:
    return f"/api/order-scheduler/orders/{request_id}/cancel"


def test_it_cancels_a_queued_order_which_then_never_reaches_the_exchange(checked_api, accounts):
    order = submit()

    response = checked_api.post(url(order.request_id))

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["request_id"], body["message"]) == (True, order.request_id, "Order cancelled")
    assert body["order"]["status"] == "cancelled"
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED and order.finished_at is not None
    assert AuditEvent.objects.filter(action="cancel", target=order.request_id, user__username="root").exists()
    drain.drain_account(account_id="account_main")
    assert not PaperOrder.objects.exists()


def test_it_refuses_to_cancel_a_filled_order_and_changes_nothing(checked_api, accounts):
    order = submit()
    drain.drain_account(account_id="account_main")
    order.refresh_from_db()

    response = checked_api.post(url(order.request_id))

    assert response.status_code == 409
    assert response.json()["success"] is False
    assert "filled on the exchange" in response.json()["error"]
    after = Order.objects.get(pk=order.pk)
    assert (after.status, after.finished_at, after.cancel_requested_at) == (
        OrderStatus.SUCCESS,
        order.finished_at,
        None,
    )


def test_it_answers_404_for_an_unknown_order(checked_api, accounts):
    response = checked_api.post(url("ORD_NOPE"))

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "No order with request_id 'ORD_NOPE'."}
