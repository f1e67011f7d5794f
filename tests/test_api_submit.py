import json

import pytest

from orders.models import Order, OrderStatus
from tests.conftest import CONTRACT_DIR

URL = "/api/order-scheduler/submit"


def seed_request() -> dict:
    return json.loads((CONTRACT_DIR / "submit.request.json").read_text())


@pytest.mark.django_db
def test_it_queues_the_seed_example_and_answers_with_the_seed_response(api, accounts):
    response = api.post(URL, seed_request(), format="json")

    assert response.status_code == 201
    body = response.json()
    expected = json.loads((CONTRACT_DIR / "submit.response.json").read_text())
    for key, value in expected.items():
        assert type(body[key]) is type(value), key
    assert body["success"] is True
    assert body["message"] == "Order submitted to scheduler"
    assert body["request_id"].startswith("ORD_")
    order = Order.objects.get(request_id=body["request_id"])
    assert order.status == OrderStatus.QUEUED
    assert (order.account_id, order.symbol, order.side, order.order_type) == (
        "account_main", "BTC/USDT:USDT", "buy", "market",
    )  # fmt: skip
    assert str(order.amount.normalize()) == "0.001"
    assert order.leverage == 10
    assert order.strategy_name == "manual"
    assert len(order.client_order_id) <= 32 and order.client_order_id.isalnum()


@pytest.mark.django_db
def test_it_refuses_anonymous_requests(client, accounts):
    response = client.post(URL, seed_request(), content_type="application/json")

    assert response.status_code in (401, 403)
    assert response.json()["success"] is False
    assert Order.objects.count() == 0
