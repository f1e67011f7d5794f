"""GET /api/order-scheduler/status."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Account, OrderStatus
from orders.selectors import day_bounds
from orders.services.drain import drain_account
from orders.services.lease import acquire_lease, new_lease_owner
from tests.conftest import wait_for
from tests.helpers import assert_matches_contract, contract, make_order

URL = "/api/order-scheduler/status"


def status(client) -> dict:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    return response.json()["status"]


@pytest.mark.django_db
def test_it_answers_with_the_seed_shape(checked_api, accounts):
    response = checked_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert_matches_contract(body, contract("status"))
    assert body["status"]["today_stats"] == {"total": 0, "success": 0, "failed": 0, "success_rate": 0}
    assert body["status"]["total_accounts"] == Account.objects.filter(in_config=True).count() == 5


@pytest.mark.django_db
def test_it_is_not_running_without_a_cluster(checked_api, accounts):
    body = status(checked_api)

    assert body["running"] is False
    assert (body["clusters_alive"], body["workers_alive"]) == (0, 0)


@pytest.mark.django_db
def test_it_counts_the_queue_per_account_and_the_oldest_wait(checked_api, accounts):
    now = timezone.now()
    make_order(created_at=now - timedelta(minutes=5), status=OrderStatus.QUEUED, account="account_hedge")
    make_order(created_at=now - timedelta(minutes=1), status=OrderStatus.QUEUED, account="account_hedge")
    make_order(created_at=now, status=OrderStatus.QUEUED, account="account_main")
    make_order(created_at=now, status=OrderStatus.PROCESSING, account="account_main")
    make_order(created_at=now - timedelta(hours=1), status=OrderStatus.SUCCESS, account="account_spot")

    body = status(checked_api)

    assert body["queue_size"] == 3 and body["in_flight"] == 1
    per_account = {a["id"]: (a["queue_size"], a["in_flight"]) for a in body["accounts"]}
    assert per_account == {
        "account_hedge": (2, 0), "account_main": (1, 1), "account_off": (0, 0),
        "account_poit_main": (0, 0), "account_spot": (0, 0),
    }  # fmt: skip
    assert 300 <= body["oldest_queued_age_seconds"] < 330


@pytest.mark.django_db
def test_it_lists_only_the_accounts_whose_lease_is_held_now(checked_api, accounts):
    assert acquire_lease(account_id="account_hedge", owner=new_lease_owner())
    assert acquire_lease(account_id="account_spot", owner=new_lease_owner())
    # A holder that crashed: its lease has run out.
    Account.objects.filter(pk="account_spot").update(lease_until=timezone.now() - timedelta(seconds=1))

    body = status(checked_api)

    assert body["locked_accounts"] == ["account_hedge"]
    assert [a["id"] for a in body["accounts"] if a["locked"]] == ["account_hedge"]


@pytest.mark.django_db
def test_it_shows_each_accounts_last_exchange_success_and_error(checked_api, accounts):
    submit = "/api/order-scheduler/submit"
    order = {"account_id": "account_spot", "symbol": "BTC/USDT", "side": "buy", "order_type": "market"}
    assert checked_api.post(submit, {**order, "amount": 0.5}).status_code == 201
    assert checked_api.post(submit, {**order, "amount": 50}).status_code == 201  # over the paper limit of 10

    drain_account(account_id="account_spot")

    body = status(checked_api)
    spot = next(a for a in body["accounts"] if a["id"] == "account_spot")
    main = next(a for a in body["accounts"] if a["id"] == "account_main")
    assert spot["last_success_at"] is not None and spot["last_error_at"] is not None
    assert spot["last_error"].startswith("paper_insufficient_funds Insufficient balance")
    assert (main["last_success_at"], main["last_error_at"], main["last_error"]) == (None, None, "")
    assert body["today_stats"] == {"total": 2, "success": 1, "failed": 1, "success_rate": 50.0}


@pytest.mark.django_db
def test_it_counts_today_in_the_configured_time_zone(checked_api, accounts, settings):
    settings.TIME_ZONE = "America/New_York"
    midnight = day_bounds(timezone.localdate())[0]
    make_order(created_at=midnight - timedelta(microseconds=1))
    make_order(created_at=midnight, status=OrderStatus.FAILED)

    assert status(checked_api)["today_stats"] == {"total": 1, "success": 0, "failed": 1, "success_rate": 0.0}


@pytest.mark.django_db
def test_it_refuses_anonymous_requests(client, accounts):
    response = client.get(URL)

    assert response.status_code in (401, 403)
    assert response.json()["success"] is False


@pytest.mark.e2e
def test_it_is_running_exactly_while_a_cluster_is_alive(service_factory, checked_api, accounts):
    assert status(checked_api)["running"] is False
    service = service_factory()
    service.wait_running()

    body = status(checked_api)
    assert body["running"] is True
    assert body["clusters_alive"] == 1 and body["workers_alive"] >= 1

    service.stop()
    wait_for(lambda: status(checked_api)["running"] is False, timeout=15, message="the heartbeat to expire")
    assert status(checked_api)["workers_alive"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("role, details", [("viewer", False), ("trader", False), ("admin", True)])
def test_it_shows_telegram_delivery_details_to_operators_only(accounts, role, details):
    from rest_framework.test import APIClient

    from orders.models import NotificationChannel
    from tests.conftest import user_with_role

    NotificationChannel.objects.create(pk="telegram", last_error="401 Unauthorized from the Bot API")
    client = APIClient()
    client.force_authenticate(user_with_role(f"tg-{role}", role))

    telegram = client.get(URL).json()["status"]["telegram"]

    assert set(telegram) == {"enabled", "pending", "last_sent_at", "next_try_at", "last_error", "last_error_at"}
    if details:
        assert telegram["last_error"] == "401 Unauthorized from the Bot API" and telegram["pending"] == 0
    else:
        assert {key: value for key, value in telegram.items() if key != "enabled"} == dict.fromkeys(
            telegram.keys() - {"enabled"}
        )
