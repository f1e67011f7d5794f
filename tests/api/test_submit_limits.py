"""Request limits: submit throttling per user and the request body cap."""

import json

import pytest
from rest_framework.test import APIClient

from orders.api.permissions import ScopedThrottle
from orders.models import Order

URL = "/api/order-scheduler/submit"
ORDER = {
    "account_id": "account_main",
    "symbol": "BTC/USDT:USDT",
    "side": "buy",
    "order_type": "market",
    "amount": 0.001,
}


@pytest.mark.django_db
def test_it_throttles_submits_per_user_with_retry_after(api, accounts, monkeypatch):
    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {"submit": "3/min"})

    codes = [api.post(URL, ORDER, format="json").status_code for _ in range(4)]

    assert codes == [201, 201, 201, 429]
    refused = api.post(URL, ORDER, format="json")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["success"] is False and "throttled" in refused.json()["error"]
    assert Order.objects.count() == 3


@pytest.mark.django_db
def test_it_throttles_each_user_separately(api, accounts, monkeypatch):
    from rest_framework.authtoken.models import Token

    from tests.conftest import user_with_role

    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {"submit": "1/min"})
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user_with_role('other')).key}")

    assert api.post(URL, ORDER, format="json").status_code == 201
    assert api.post(URL, ORDER, format="json").status_code == 429
    assert other.post(URL, ORDER, format="json").status_code == 201


@pytest.mark.django_db
def test_it_refuses_an_oversized_body_before_reading_it(api, accounts, settings):
    body = json.dumps([ORDER] * 20000)  # about 2 MB

    response = api.post(URL, body, content_type="application/json")

    assert response.status_code == 413
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["error"]
    assert Order.objects.count() == 0
