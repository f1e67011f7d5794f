"""POST /api/order-scheduler/orders/<request_id>/retry (who may: tests/api/test_access_matrix.py)."""

from decimal import Decimal

import pytest

from orders.models import Order, OrderStatus
from tests.helpers import failed_order, submit

pytestmark = pytest.mark.django_db


def url(request_id: str) -> str:
    return f"/api/order-scheduler/orders/{request_id}/retry"


def test_it_resubmits_a_failed_order_as_a_new_linked_order(checked_api, accounts):
    failed = failed_order()

    response = checked_api.post(url(failed.request_id))

    assert response.status_code == 201
    body = response.json()
    retry = Order.objects.get(retry_of=failed)
    assert (body["success"], body["request_id"]) == (True, retry.request_id)
    assert body["message"] == f"Order resubmitted as {retry.request_id}"
    assert body["order"]["status"] == "queued"
    assert (retry.status, retry.account_id, retry.symbol, retry.amount) == (
        OrderStatus.QUEUED, "account_spot", "BTC/USDT", Decimal("50"),
    )  # fmt: skip
    assert Order.objects.get(pk=failed.pk).status == OrderStatus.FAILED


def test_it_retries_an_order_only_once(checked_api, accounts):
    failed = failed_order()
    first = checked_api.post(url(failed.request_id)).json()["request_id"]

    again = checked_api.post(url(failed.request_id))

    assert again.status_code == 409
    assert f"already retried as {first}" in again.json()["error"]
    assert Order.objects.filter(retry_of=failed).count() == 1


def test_it_refuses_to_retry_an_order_that_did_not_fail_and_creates_nothing(checked_api, accounts):
    order = submit()

    response = checked_api.post(url(order.request_id))

    assert response.status_code == 409
    assert "only failed or expired" in response.json()["error"]
    assert list(Order.objects.values_list("request_id", "status")) == [(order.request_id, OrderStatus.QUEUED)]


def test_it_answers_404_for_an_unknown_order(checked_api, accounts):
    response = checked_api.post(url("ORD_NOPE"))

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "No order with request_id 'ORD_NOPE'."}
    assert not Order.objects.exists()
