"""GET /api/order-scheduler/orders/<request_id>: one order with its error and timings."""

from datetime import UTC, datetime

import pytest

from orders.models import OrderStatus
from tests.helpers import assert_matches_contract, contract, make_order

URL = "/api/order-scheduler/orders"
pytestmark = pytest.mark.django_db

T0 = datetime(2026, 2, 21, 7, 30, tzinfo=UTC)


def test_it_returns_one_order_with_its_error_and_timings(checked_api, accounts):
    order = make_order(created_at=T0, status=OrderStatus.FAILED, wait_ms=250, run_ms=1200, request_id="ORD_ONE")
    make_order(created_at=T0, request_id="ORD_ONE_MORE")

    response = checked_api.get(f"{URL}/ORD_ONE")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    detail = body["order"]
    assert detail["request_id"] == "ORD_ONE" and detail["status"] == "failed" and detail["order_id"] is None
    assert (detail["error_code"], detail["error_message"]) == ("paper_insufficient_funds", "Insufficient balance")
    assert (detail["queue_wait_ms"], detail["execution_ms"]) == (250, 1200)
    assert datetime.fromisoformat(detail["finished_at"]) == order.finished_at
    assert_matches_contract(detail, contract("orders")["orders"][0])


def test_it_answers_404_for_an_unknown_request_id(checked_api, accounts):
    make_order(created_at=T0, request_id="ORD_KNOWN")

    response = checked_api.get(f"{URL}/ORD_UNKNOWN")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "No order with request_id 'ORD_UNKNOWN'."}
    for weird in ("ORD_KNOWN%00", "X" * 65, "%E2%82%AC"):
        assert checked_api.get(f"{URL}/{weird}").status_code == 404
