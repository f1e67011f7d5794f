"""The OpenAPI schema (/api/schema/), its interactive docs, and the browsable API."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from orders.models import Order
from tests.helpers import SchemaError, check_response, make_order, published_schema

pytestmark = pytest.mark.django_db
SUBMIT = "/api/order-scheduler/submit"
ENDPOINTS = {
    "/api/order-scheduler/submit": {"post": {"200", "201", "400", "401", "403", "409", "429"}},
    "/api/order-scheduler/status": {"get": {"200", "401", "403"}},
    "/api/order-scheduler/orders": {"get": {"200", "400", "401", "403"}},
    "/api/order-scheduler/orders.csv": {"get": {"200", "400", "401", "403", "429"}},
    "/api/order-scheduler/orders.xlsx": {"get": {"200", "400", "401", "403", "429"}},
    "/api/order-scheduler/events": {"get": {"200", "400", "401", "403", "503"}},
    "/api/order-scheduler/orders/{request_id}": {"get": {"200", "404", "401", "403"}},
    "/api/order-scheduler/stats": {"get": {"200", "400", "401", "403", "429"}},
    "/api/order-scheduler/orders/{request_id}/cancel": {"post": {"200", "201", "404", "409", "401", "403"}},
    "/api/order-scheduler/orders/{request_id}/retry": {"post": {"200", "201", "404", "409", "401", "403"}},
    "/api/order-scheduler/orders/{request_id}/settle": {"post": {"200", "400", "404", "409", "401", "403"}},
    "/api/order-scheduler/pause": {"post": {"200", "400", "401", "403", "404"}},
    "/api/order-scheduler/resume": {"post": {"200", "400", "401", "403", "404"}},
}


def seed_order(**extra) -> dict:
    body = {"account_id": "account_main", "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market"}
    return {**body, "amount": 0.001, "leverage": 10, "strategy_name": "manual", **extra}


@pytest.fixture
def browser(admin_user) -> Client:
    """A logged-in browser session that, like a real browser, must send CSRF tokens."""
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="root", password="pw-root-123")
    return client


def test_it_generates_a_valid_openapi_3_1_schema_without_warnings(tmp_path):
    target = tmp_path / "schema.json"

    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))

    schema = json.loads(target.read_text())
    assert schema["openapi"] == "3.1.0"
    documented = {
        path: {method: set(operation["responses"]) for method, operation in methods.items()}
        for path, methods in schema["paths"].items()
    }
    assert documented == ENDPOINTS


def test_it_publishes_the_schema_to_logged_in_users_only(api, client, tmp_path):
    call_command("spectacular", "--format", "openapi-json", "--file", str(tmp_path / "schema.json"))

    assert published_schema(api) == json.loads((tmp_path / "schema.json").read_text())
    response = client.get("/api/schema/")
    assert response.status_code in (401, 403)


def test_it_documents_the_seed_fields_as_the_types_they_have(api):
    components = published_schema(api)["components"]["schemas"]
    order = components["Order"]["properties"]

    assert order["amount"]["type"] == "number" and order["leverage"]["type"] == ["integer", "null"]
    assert order["order_id"]["type"] == ["string", "null"] and order["timestamp"]["type"] == "string"
    stats = components["Stats"]["properties"]
    assert stats["by_account"]["additionalProperties"] == {"$ref": "#/components/schemas/GroupStats"}
    assert components["TodayStats"]["properties"]["success_rate"]["type"] == "number"


def test_it_sends_a_browser_that_is_not_logged_in_to_the_login_page_for_the_docs(client):
    response = client.get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"] == "/api-auth/login/?next=/api/docs/"
    assert client.get(response["Location"]).status_code == 200


def test_it_serves_the_interactive_docs_from_our_own_static_files(browser):
    response = browser.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
    assert assets, page[:500]
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among our static files"
    start_up = browser.get("/api/docs/?script=").content.decode()  # not inline: the CSP forbids that
    assert "/api/schema/" in start_up
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "the docs must not load anything from elsewhere"


@pytest.mark.parametrize(
    "url",
    [
        "/api/order-scheduler/status",
        "/api/order-scheduler/orders",
        "/api/order-scheduler/orders?status=failed&limit=5",
        "/api/order-scheduler/orders?format=api",
        "/api/order-scheduler/orders/ORD_BROWSE",
        "/api/order-scheduler/stats",
        "/api/order-scheduler/stats?account=account_main",
    ],
)
def test_it_renders_the_browsable_api_for_a_logged_in_user(browser, accounts, url):
    make_order(created_at=timezone.now(), request_id="ORD_BROWSE")

    response = browser.get(url, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "&quot;success&quot;: true" in page and "root" in page  # the data, and who is logged in


def test_it_lets_a_logged_in_user_submit_through_the_browsable_api(browser, accounts):
    page = browser.get(SUBMIT, HTTP_ACCEPT="text/html")
    assert page.status_code == 405 and "<form" in page.content.decode()  # the POST form
    token = browser.cookies["csrftoken"].value

    refused = browser.post(SUBMIT, json.dumps(seed_order()), content_type="application/json")
    accepted = browser.post(SUBMIT, json.dumps(seed_order()), content_type="application/json", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403 and accepted.status_code == 201
    assert Order.objects.filter(request_id=accepted.json()["request_id"]).count() == 1
    assert Order.objects.count() == 1


def test_it_describes_every_submit_response(checked_api, accounts):
    created = checked_api.post(SUBMIT, seed_order(request_id="ORD_SCHEMA_1"))
    replayed = checked_api.post(SUBMIT, seed_order(request_id="ORD_SCHEMA_1"))
    conflict = checked_api.post(SUBMIT, seed_order(request_id="ORD_SCHEMA_1", amount=0.002))
    batch = checked_api.post(SUBMIT, [seed_order(), seed_order(side="sell")])
    invalid = checked_api.post(SUBMIT, seed_order(amount=-1, ammount=1))
    malformed_batch = checked_api.post(SUBMIT, [seed_order(), seed_order(side="up")])
    refused_batch = checked_api.post(SUBMIT, [seed_order(), seed_order(account_id="account_nobody")])

    assert [r.status_code for r in (created, replayed, conflict, batch, invalid, malformed_batch, refused_batch)] == [
        201, 200, 409, 201, 400, 400, 400,
    ]  # fmt: skip
    assert malformed_batch.json()["errors"][0] == {} and "side" in malformed_batch.json()["errors"][1]
    assert refused_batch.json()["errors"][0] == {} and "account_id" in refused_batch.json()["errors"][1]
    assert Order.objects.count() == 3


class FakeResponse:
    def __init__(self, status_code: int, body):
        self.status_code = status_code
        self.body = body

    def get(self, header, default=""):
        return "application/json" if header == "Content-Type" else default

    def json(self):
        return self.body


def test_it_catches_a_response_that_drifts_from_the_schema(checked_api, accounts):
    make_order(created_at=timezone.now() - timedelta(minutes=1))
    spec = checked_api.spec
    good = checked_api.get("/api/order-scheduler/orders").json()
    check_response(spec, "get", "/api/order-scheduler/orders", FakeResponse(200, good))

    extra_key = {**good, "orders": [{**good["orders"][0], "secret": "x"}]}
    string_amount = {**good, "orders": [{**good["orders"][0], "amount": "0.001"}]}
    for status_code, body in ((200, extra_key), (200, string_amount), (200, {"success": True}), (418, good)):
        with pytest.raises(SchemaError):
            check_response(spec, "get", "/api/order-scheduler/orders", FakeResponse(status_code, body))


FUZZ_CONFIG = """
[warnings]
fail-on = ["validation_mismatch", "low_valid_rate", "unsupported_regex", "method_not_allowed"]

[dictionaries.orders]
values = {orders}

[parameters]
"query.account" = "account_main"
"query.cursor" = "{cursor}"
"path.request_id" = {{ dictionary = "orders" }}
"""


@pytest.mark.django_db(transaction=True)
def test_it_finds_no_failure_and_no_mostly_rejected_operation_with_schemathesis(live_server, tmp_path, monkeypatch):
    """schemathesis generates requests from our own published schema, valid and invalid,
    through every operation (examples, boundary coverage, then fuzzing) and checks each
    answer: no 500, only documented statuses, content types and bodies, valid data never
    refused, invalid data never accepted, and no operation whose generated valid data is
    mostly rejected. Real HTTP against live_server; bounded in examples and time. The
    configuration supplies what a schema cannot: which accounts and orders exist."""
    import subprocess
    import sys

    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from orders import selectors
    from orders.api.permissions import ScopedThrottle
    from orders.services.accounts import sync_accounts
    from tests.conftest import BASE_DIR, subprocess_env

    # Rates are tested in test_api_limits; here every request should reach the view.
    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {"submit": "100000/min", "export": "100000/min",
                                                          "stats": "100000/min"})  # fmt: skip
    sync_accounts()
    orders = [make_order(created_at=timezone.now() - timedelta(seconds=n)) for n in range(4)]
    orders += [make_order(created_at=timezone.now(), status=status) for status in ("queued", "failed")]
    cursor = selectors.encode_cursor(orders[1].created_at, orders[1].pk)
    token = Token.objects.create(user=get_user_model().objects.create_superuser("fuzz", "", "pw-fuzz-123")).key
    schema_file = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(schema_file))
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG.format(orders=json.dumps([o.request_id for o in orders]), cursor=cursor))
    env = subprocess_env(
        SCHEMATHESIS_HOOKS="tests.schemathesis_hooks",
        SCHEMATHESIS_ACCOUNTS="account_main,account_poit_main",
        PYTHONPATH=str(BASE_DIR),
    )

    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(schema_file),
         "--url", live_server.url, "-H", f"Authorization: Token {token}", "--checks", "all",
         # A never-ending Server-Sent Events stream: its frames are tested in test_api_events.
         "--exclude-path", "/api/order-scheduler/events",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--max-time", "30",
         "--workers", "1", "--request-timeout", "10", "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
