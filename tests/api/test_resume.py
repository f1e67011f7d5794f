"""POST /api/order-scheduler/resume (who may: tests/api/test_access_matrix.py)."""

import pytest

from orders.models import Account, AuditEvent, Control, Order, OrderStatus
from orders.services import drain
from orders.services.controls import pause
from tests.helpers import submit

URL = "/api/order-scheduler/resume"
pytestmark = pytest.mark.django_db


def test_it_resumes_an_account_whose_held_orders_then_run(checked_api, accounts):
    pause(account_id="account_main", reason="funding check")
    order = submit()

    response = checked_api.post(URL, {"account": "account_main"})

    assert response.status_code == 200
    assert response.json()["message"] == "Resumed account account_main"
    assert not Account.objects.get(pk="account_main").paused
    assert AuditEvent.objects.filter(action="resume", target="account_main", user__username="root").exists()
    drain.drain_account(account_id="account_main")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SUCCESS


def test_it_resumes_all_trading_without_an_account(checked_api, accounts):
    pause(reason="exchange incident")

    response = checked_api.post(URL, {})

    assert response.status_code == 200
    assert response.json()["message"] == "Resumed all trading"
    assert not Control.objects.get(pk=1).trading_paused
    assert response.json()["status"]["trading_paused"] is False


def test_it_answers_404_for_an_unknown_account_and_resumes_nothing(checked_api, accounts):
    pause(account_id="account_main", reason="funding check")

    response = checked_api.post(URL, {"account": "nope"})

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert Account.objects.get(pk="account_main").paused
    assert not AuditEvent.objects.filter(action="resume").exists()
