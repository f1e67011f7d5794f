"""Every endpoint for anonymous, viewer, trader (own and foreign account), admin role
(unlimited and limited to some accounts) and superuser: each allowed or refused as
documented, and never a 500."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Order
from tests.conftest import user_with_role
from tests.helpers import failed_order, submit

ORDER = {"symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": 0.001}


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def queued(account: str) -> str:
    return submit(account=account).request_id


@pytest.fixture
def people(accounts):
    return {
        "anonymous": None,
        "viewer": user_with_role("vera", "viewer"),
        "trader": user_with_role("tom", "trader", accounts=["account_main", "account_spot"]),
        "admin": user_with_role("ada", "admin"),
        "limited_admin": user_with_role("lia", "admin", accounts=["account_main", "account_spot"]),
        "superuser": get_user_model().objects.create_superuser("sue", "", "pw-sue-123"),
    }


READS = [
    "/api/order-scheduler/status",
    "/api/order-scheduler/orders",
    "/api/order-scheduler/stats",
    "/api/order-scheduler/orders.csv",
    "/api/order-scheduler/orders.xlsx",
    "/api/order-scheduler/events",
    "/api/schema/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "viewer", "trader", "admin", "limited_admin", "superuser"])
def test_it_answers_every_read_endpoint_as_the_role_allows(people, who):
    client = client_for(people[who])
    own, foreign = queued("account_main"), queued("account_poit_main")

    codes = {path: client.get(path).status_code for path in READS}
    codes["own detail"] = client.get(f"/api/order-scheduler/orders/{own}").status_code
    codes["foreign detail"] = client.get(f"/api/order-scheduler/orders/{foreign}").status_code
    codes["foreign filter"] = client.get("/api/order-scheduler/orders?account=account_poit_main").status_code
    codes["foreign stats"] = client.get("/api/order-scheduler/stats?account=account_poit_main").status_code
    codes["foreign export"] = client.get("/api/order-scheduler/orders.csv?account=account_poit_main").status_code
    codes["foreign xlsx"] = client.get("/api/order-scheduler/orders.xlsx?account=account_poit_main").status_code
    codes["foreign events"] = client.get("/api/order-scheduler/events?account=account_poit_main").status_code
    codes["healthz"] = client.get("/healthz").status_code

    if who == "anonymous":
        assert set(codes.values()) - {200} == {401} and codes["healthz"] == 200
    elif who in ("trader", "limited_admin"):  # limited to account_main and account_spot
        assert {codes[p] for p in READS} == {200}
        assert (codes["own detail"], codes["foreign detail"]) == (200, 404)
        assert (codes["foreign filter"], codes["foreign stats"], codes["foreign export"]) == (403, 403, 403)
        assert (codes["foreign xlsx"], codes["foreign events"]) == (403, 403)
    else:
        assert set(codes.values()) == {200}


@pytest.mark.django_db
def test_it_shows_a_limited_trader_only_their_accounts(people):
    queued("account_main"), queued("account_poit_main"), queued("account_spot")
    client = client_for(people["trader"])

    orders = client.get("/api/order-scheduler/orders").json()["orders"]
    status = client.get("/api/order-scheduler/status").json()["status"]
    stats = client.get("/api/order-scheduler/stats").json()["stats"]

    assert {o["account_id"] for o in orders} == {"account_main", "account_spot"}
    assert {a["id"] for a in status["accounts"]} == {"account_main", "account_spot"}
    assert status["queue_size"] == 2 and status["total_accounts"] == 2
    assert set(stats["by_account"]) == {"account_main", "account_spot"} and stats["today"]["total"] == 2


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "viewer", "trader", "admin", "limited_admin", "superuser"])
def test_it_allows_trading_actions_to_traders_on_their_accounts_only(people, who):
    client = client_for(people[who])
    own_queued, foreign_queued = queued("account_main"), queued("account_poit_main")
    own_failed = failed_order("account_spot").request_id

    codes = {
        "submit own": client.post("/api/order-scheduler/submit", {**ORDER, "account_id": "account_main"}, format="json").status_code,
        "submit foreign": client.post("/api/order-scheduler/submit", {**ORDER, "account_id": "account_poit_main"}, format="json").status_code,
        "cancel own": client.post(f"/api/order-scheduler/orders/{own_queued}/cancel").status_code,
        "cancel foreign": client.post(f"/api/order-scheduler/orders/{foreign_queued}/cancel").status_code,
        "retry own": client.post(f"/api/order-scheduler/orders/{own_failed}/retry").status_code,
        "cancel again": client.post(f"/api/order-scheduler/orders/{own_queued}/cancel").status_code,
    }  # fmt: skip

    expected = {
        "anonymous": dict.fromkeys(codes, 401),
        "viewer": dict.fromkeys(codes, 403),
        "trader": {"submit own": 201, "submit foreign": 403, "cancel own": 200, "cancel foreign": 404,
                   "retry own": 201, "cancel again": 409},
        "admin": {"submit own": 201, "submit foreign": 201, "cancel own": 200, "cancel foreign": 200,
                  "retry own": 201, "cancel again": 409},
    }  # fmt: skip
    expected["superuser"] = expected["admin"]
    expected["limited_admin"] = expected["trader"]
    assert codes == expected[who]
    if who in ("anonymous", "viewer"):
        assert Order.objects.filter(status="cancelled").count() == 0
        assert Order.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "viewer", "trader", "admin", "limited_admin", "superuser"])
def test_it_allows_the_kill_switch_to_admins_only(people, who):
    client = client_for(people[who])

    pause = client.post("/api/order-scheduler/pause", {"account": "account_main", "reason": "drill"}, format="json")
    resume = client.post("/api/order-scheduler/resume", {"account": "account_main"}, format="json")
    unknown = client.post("/api/order-scheduler/pause", {"account": "nope"}, format="json")

    expected = {"anonymous": 401, "viewer": 403, "trader": 403}.get(who)
    if expected:
        assert (pause.status_code, resume.status_code, unknown.status_code) == (expected,) * 3
    elif who == "limited_admin":  # their own account only; an unknown one is not theirs either
        assert (pause.status_code, resume.status_code, unknown.status_code) == (200, 200, 403)
    else:
        assert (pause.status_code, resume.status_code, unknown.status_code) == (200, 200, 404)
        assert pause.json()["status"]["accounts"][0]["id"] == "account_hedge"
        assert unknown.json()["errors"]["account"] == ["Unknown account 'nope'."]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "viewer", "trader", "admin", "limited_admin", "superuser"])
def test_it_opens_the_admin_to_staff_only(people, who, client):
    user = people[who]
    if user is not None:
        client.force_login(user)

    response = client.get("/admin/orders/order/")

    if who in ("admin", "limited_admin", "superuser"):
        assert response.status_code == 200
    else:
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_it_keeps_a_limited_admin_to_their_accounts_for_pause_and_resume(people):
    from orders.models import Account, AuditEvent, Control
    from orders.services.controls import pause

    client = client_for(people["limited_admin"])
    pause(reason="superuser's incident", user=people["superuser"])
    audited = AuditEvent.objects.count()

    foreign = client.post("/api/order-scheduler/pause", {"account": "account_poit_main", "reason": "x"}, format="json")
    desk_pause = client.post("/api/order-scheduler/pause", {"reason": "x"}, format="json")
    desk_resume = client.post("/api/order-scheduler/resume", {}, format="json")
    foreign_resume = client.post("/api/order-scheduler/resume", {"account": "account_poit_main"}, format="json")

    assert [r.status_code for r in (foreign, desk_pause, desk_resume, foreign_resume)] == [403] * 4
    assert foreign.json()["error"] == "You may not pause account 'account_poit_main'."
    assert desk_resume.json()["error"] == "You may not resume all trading."
    assert Control.objects.get(pk=1).trading_paused and Control.objects.get(pk=1).reason == "superuser's incident"
    assert not Account.objects.get(pk="account_poit_main").paused
    assert AuditEvent.objects.count() == audited


@pytest.mark.django_db
def test_it_keeps_a_limited_admin_to_their_accounts_in_the_admin_and_the_dashboard(people, client):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

    from orders.models import Account

    client.force_login(people["limited_admin"])
    listed = client.get("/admin/orders/account/")
    refused = client.post(
        "/admin/orders/account/",
        {"action": "pause_accounts", ACTION_CHECKBOX_NAME: ["account_poit_main"]},
        follow=True,
    )
    own = client.post(
        "/admin/orders/account/", {"action": "pause_accounts", ACTION_CHECKBOX_NAME: ["account_main"]}, follow=True
    )
    page = client.get("/order-scheduler").content.decode()

    assert {a.pk for a in listed.context["cl"].result_list} == {"account_main", "account_spot"}
    assert refused.status_code == 200 and not Account.objects.get(pk="account_poit_main").paused
    assert own.status_code == 200 and Account.objects.get(pk="account_main").paused
    assert 'data-action="toggle-trading"' not in page  # the desk-wide switch is not theirs
    assert 'data-action="pause-account"' in page or 'data-action="resume-account"' in page
