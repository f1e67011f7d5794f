"""POST /api/order-scheduler/pause (who may: tests/api/test_access_matrix.py)."""

import pytest

from orders.models import Account, AuditEvent, Control, Order, OrderStatus
from orders.services import drain
from tests.helpers import submit

URL = "/api/order-scheduler/pause"
pytestmark = pytest.mark.django_db


def test_it_pauses_an_account_whose_orders_then_wait(checked_api, accounts):
    response = checked_api.post(URL, {"account": "account_main", "reason": "funding check"})

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert response.json()["message"] == "Paused account account_main"
    account = Account.objects.get(pk="account_main")
    assert account.paused and "funding check" in account.pause_reason
    assert AuditEvent.objects.filter(action="pause", target="account_main", user__username="root").exists()
    order = submit()
    assert drain.drain_account(account_id="account_main") == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.QUEUED
    assert not Account.objects.get(pk="account_poit_main").paused  # the others trade on


def test_it_pauses_all_trading_without_an_account(checked_api, accounts):
    response = checked_api.post(URL, {"reason": "exchange incident"})

    assert response.status_code == 200
    assert response.json()["message"] == "Paused all trading"
    control = Control.objects.get(pk=1)
    assert control.trading_paused and control.reason == "exchange incident"
    assert response.json()["status"]["trading_paused"] is True


def test_it_answers_404_for_an_unknown_account_and_pauses_nothing(checked_api, accounts):
    response = checked_api.post(URL, {"account": "nope", "reason": "x"})

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert not Account.objects.filter(paused=True).exists()
    assert not Control.objects.filter(trading_paused=True).exists()
    assert not AuditEvent.objects.filter(action="pause").exists()
