"""POST /api/order-scheduler/submit: validation, batches, idempotency, stored values."""

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Account, Order, OrderStatus
from orders.services.accounts import sync_accounts
from tests.conftest import BASE_DIR, CONTRACT_DIR, user_with_role

URL = "/api/order-scheduler/submit"
MISSING = object()


def seed_request() -> dict:
    return json.loads((CONTRACT_DIR / "submit.request.json").read_text())


def order_body(**changes) -> dict:
    """The seed's example order with some fields changed (MISSING removes one)."""
    body = {**seed_request(), **changes}
    return {key: value for key, value in body.items() if value is not MISSING}


def assert_types_match(body: dict, example_file: str) -> None:
    expected = json.loads((CONTRACT_DIR / example_file).read_text())
    for key, value in expected.items():
        assert key in body, key
        assert type(body[key]) is type(value), key


def client_for(username: str) -> APIClient:
    user = user_with_role(username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.django_db
def test_it_queues_the_seed_example_and_answers_with_the_seed_response(api, accounts, settings):
    response = api.post(URL, seed_request(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert_types_match(body, "submit.response.json")
    assert body["success"] is True
    assert body["message"] == "Order submitted to scheduler"
    assert body["request_id"].startswith("ORD_")
    assert body["created"] is True
    order = Order.objects.get(request_id=body["request_id"])
    assert order.status == OrderStatus.QUEUED
    assert (order.account_id, order.symbol, order.side, order.order_type) == (
        "account_main", "BTC/USDT:USDT", "buy", "market",
    )  # fmt: skip
    assert str(order.amount.normalize()) == "0.001"
    assert order.leverage == 10
    assert order.margin_mode == "cross"
    assert order.strategy_name == "manual"
    assert order.priority == 0
    # Without expires_in an order still has a maximum age (ORDER_SCHEDULER_DEFAULT_EXPIRES_IN).
    assert order.expires_at - order.created_at == timedelta(seconds=settings.ORDER_SCHEDULER["DEFAULT_EXPIRES_IN"])
    assert len(order.client_order_id) <= 32 and order.client_order_id.isalnum()
    # The order as the API shows it elsewhere: numbers stay numbers.
    assert body["order"]["request_id"] == order.request_id
    assert body["order"]["amount"] == 0.001
    assert body["order"]["leverage"] == 10
    assert body["order"]["order_id"] is None


@pytest.mark.django_db
def test_it_refuses_anonymous_requests(client, accounts):
    response = client.post(URL, seed_request(), content_type="application/json")

    assert response.status_code in (401, 403)
    assert response.json()["success"] is False
    assert Order.objects.count() == 0


# --- validation: each rule answers 400 with its message and writes nothing --------------

INVALID_ORDERS = [
    pytest.param({"account_id": "account_nope"}, "account_id", "Unknown account 'account_nope'.", id="unknown-account"),
    pytest.param(
        {"account_id": "account_off"}, "account_id", "Account 'account_off' is disabled.", id="disabled-account"
    ),
    pytest.param({"account_id": MISSING}, "account_id", "This field is required.", id="account-missing"),
    *[
        pytest.param(
            {"symbol": symbol},
            "symbol",
            "Use ccxt's unified form: BASE/QUOTE for spot (BTC/USDT), BASE/QUOTE:SETTLE for swaps (BTC/USDT:USDT).",
            id=f"symbol-{symbol}",
        )
        for symbol in ("BTCUSDT", "btc/usdt", "BTC-USDT-SWAP", "BTC/USDT:", "BTC/USDT/USDT", "BTC /USDT")
    ],
    pytest.param({"symbol": 123}, "symbol", "Must be a string.", id="symbol-number"),
    pytest.param({"strategy_name": True}, "strategy_name", "Must be a string.", id="strategy-boolean"),
    pytest.param({"symbol": ""}, "symbol", "This field may not be blank.", id="symbol-empty"),
    pytest.param({"side": "hold"}, "side", '"hold" is not a valid choice.', id="side"),
    pytest.param({"side": "BUY"}, "side", '"BUY" is not a valid choice.', id="side-case"),
    pytest.param({"order_type": "stop"}, "order_type", '"stop" is not a valid choice.', id="order-type"),
    pytest.param({"amount": 0}, "amount", "Must be at least 0.000000000001.", id="amount-zero"),
    pytest.param({"amount": -0.5}, "amount", "Must be at least 0.000000000001.", id="amount-negative"),
    pytest.param({"amount": "lots"}, "amount", "A valid number is required.", id="amount-not-a-number"),
    pytest.param({"amount": "NaN"}, "amount", "A valid number is required.", id="amount-nan"),
    pytest.param({"amount": "Infinity"}, "amount", "A valid number is required.", id="amount-infinity"),
    pytest.param({"amount": True}, "amount", "A valid number is required.", id="amount-boolean"),
    pytest.param({"amount": MISSING}, "amount", "This field is required.", id="amount-missing"),
    pytest.param(
        {"amount": 1e15},
        "amount",
        "Ensure that there are no more than 15 digits before the decimal point.",
        id="amount-too-large",
    ),  # fmt: skip
    pytest.param(
        {"amount": "0.0000000000009"}, "amount", "Must be at least 0.000000000001.", id="amount-dp-rounds-down-to-0"
    ),
    pytest.param({"order_type": "limit"}, "price", "A limit order needs a price.", id="limit-without-price"),
    pytest.param(
        {"order_type": "limit", "price": None}, "price", "A limit order needs a price.", id="limit-null-price"
    ),
    pytest.param({"price": 60000}, "price", "A market order takes no price.", id="market-with-price"),
    pytest.param({"order_type": "limit", "price": 0}, "price", "Must be at least 0.000000000001.", id="price-zero"),
    pytest.param(
        {"order_type": "limit", "price": -1}, "price", "Must be at least 0.000000000001.", id="price-negative"
    ),
    pytest.param({"leverage": 0}, "leverage", "Ensure this value is greater than or equal to 1.", id="leverage-0"),
    pytest.param({"leverage": 126}, "leverage", "Ensure this value is less than or equal to 125.", id="leverage-126"),
    pytest.param({"leverage": 2.5}, "leverage", "A valid integer is required.", id="leverage-fraction"),
    pytest.param({"leverage": "ten"}, "leverage", "A valid integer is required.", id="leverage-text"),
    pytest.param(
        {"account_id": "account_hedge", "leverage": 21},
        "leverage",
        "Leverage 21 is above this account's limit of 20 (max_leverage).",
        id="leverage-above-account-max",
    ),
    pytest.param(
        {"account_id": "account_spot", "symbol": "BTC/USDT", "amount_unit": "contracts"},
        "amount_unit",
        "'contracts' applies to swaps and futures only; spot amounts are in base currency.",
        id="contracts-on-spot",
    ),
    pytest.param({"amount_unit": "lots"}, "amount_unit", '"lots" is not a valid choice.', id="amount-unit"),
    pytest.param({"margin_mode": "cash"}, "margin_mode", '"cash" is not a valid choice.', id="margin-mode"),
    pytest.param({"reduce_only": "maybe"}, "reduce_only", "Must be a valid boolean.", id="reduce-only"),
    pytest.param({"strategy_name": ""}, "strategy_name", "This field may not be blank.", id="strategy-blank"),
    pytest.param(
        {"priority": 1001}, "priority", "Ensure this value is less than or equal to 1000.", id="priority-high"
    ),
    pytest.param(
        {"priority": -1001}, "priority", "Ensure this value is greater than or equal to -1000.", id="priority-low"
    ),
    pytest.param({"expires_in": 0}, "expires_in", "Ensure this value is greater than or equal to 1.", id="expires-0"),
    pytest.param(
        {"expires_in": 8 * 24 * 3600},
        "expires_in",
        "Ensure this value is less than or equal to 604800.",
        id="expires-8d",
    ),
    *[
        pytest.param(
            {"request_id": request_id}, "request_id", "1 to 64 letters, digits or _ . : - only.", id=f"request-id-{n}"
        )
        for n, request_id in enumerate(["has space", "a/b", "ORD_ü", "x;drop", "tab\there"])
    ],
    pytest.param(
        {"request_id": "R" * 65},
        "request_id",
        "Ensure this field has no more than 64 characters.",
        id="request-id-long",
    ),
    pytest.param({"request_id": ""}, "request_id", "This field may not be blank.", id="request-id-empty"),
    pytest.param({"amount": MISSING, "ammount": 0.001}, "ammount", "Unknown field.", id="unknown-field"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "field", "message"), INVALID_ORDERS)
def test_it_refuses_an_invalid_order_with_the_fields_message(api, accounts, changes, field, message):
    response = api.post(URL, order_body(**changes), format="json")

    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Invalid order", "errors": {field: [message]}}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_an_account_no_longer_in_the_accounts_file(api, accounts):
    Account.objects.filter(pk="account_main").update(in_config=False)

    response = api.post(URL, seed_request(), format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"account_id": ["Account 'account_main' is no longer in the accounts file."]}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_an_account_whose_secrets_are_missing(api, tmp_path, monkeypatch):
    monkeypatch.delenv("H5_TEST_DEMO_KEY", raising=False)
    monkeypatch.delenv("H5_TEST_DEMO_SECRET", raising=False)
    monkeypatch.delenv("H5_TEST_DEMO_PASSPHRASE", raising=False)
    entries = json.loads((BASE_DIR / "tests" / "accounts.json").read_text())["accounts"]
    demo = {
        "id": "account_demo", "mode": "demo", "api_key_env": "H5_TEST_DEMO_KEY",
        "secret_env": "H5_TEST_DEMO_SECRET", "passphrase_env": "H5_TEST_DEMO_PASSPHRASE",
    }  # fmt: skip
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"accounts": [*entries, demo]}))
    sync_accounts(path=path)

    response = api.post(URL, order_body(account_id="account_demo"), format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "account_id": [
            "Account 'account_demo' cannot trade: environment variable H5_TEST_DEMO_KEY is not set; "
            "environment variable H5_TEST_DEMO_SECRET is not set; "
            "environment variable H5_TEST_DEMO_PASSPHRASE is not set"
        ]
    }
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param('{"account_id": "account_main",', "JSON parse error", id="malformed"),
        pytest.param("{'account_id': 'account_main'}", "JSON parse error", id="single-quotes"),
        pytest.param('{"amount": NaN}', "JSON parse error", id="nan-literal"),
    ],
)
def test_it_refuses_a_body_that_is_not_json(api, accounts, raw, error):
    response = api.generic("POST", URL, raw, content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"].startswith(error)
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ['"an order"', "42", "null", "true"])
def test_it_refuses_a_json_body_that_is_not_an_object_or_list(api, accounts, raw):
    response = api.generic("POST", URL, raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "Invalid request",
        "errors": {"non_field_errors": ["Send a JSON object or a list of them."]},
    }
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_an_empty_batch(api, accounts):
    response = api.post(URL, [], format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["An empty batch."]}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_a_batch_above_the_limit(api, accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "MAX_BATCH": 3}

    response = api.post(URL, [seed_request() for _ in range(4)], format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["At most 3 orders per batch."]}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_an_idempotency_key_header_too_long_to_store(api, accounts):
    response = api.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="k" * 101)

    assert response.status_code == 400
    assert response.json()["errors"] == {"Idempotency-Key": ["At most 100 printable ASCII characters."]}
    assert Order.objects.count() == 0


# --- batches: all or nothing -------------------------------------------------------------


@pytest.mark.django_db
def test_it_queues_a_batch_in_order(api, accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "MAX_BATCH": 3}
    batch = [
        order_body(request_id="batch-1"),
        order_body(request_id="batch-2", account_id="account_poit_main", side="sell"),
        order_body(account_id="account_spot", symbol="BTC/USDT", order_type="limit", price=60000, leverage=MISSING),
    ]

    response = api.post(URL, batch, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert body["created"] is True
    assert body["message"] == "Order submitted to scheduler"
    assert body["request_ids"][:2] == ["batch-1", "batch-2"]
    assert body["request_ids"][2].startswith("ORD_")
    assert [o["request_id"] for o in body["orders"]] == body["request_ids"]
    rows = {o.request_id: o for o in Order.objects.all()}
    assert set(rows) == set(body["request_ids"])
    assert rows["batch-2"].account_id == "account_poit_main" and rows["batch-2"].side == "sell"
    spot = rows[body["request_ids"][2]]
    assert (spot.symbol, spot.order_type, spot.price) == ("BTC/USDT", "limit", 60000)


@pytest.mark.django_db
def test_it_refuses_a_whole_batch_when_one_order_is_malformed(api, accounts):
    batch = [order_body(request_id="ok-1"), order_body(side="hold"), "not an order", order_body(request_id="ok-2")]

    response = api.post(URL, batch, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "Invalid order",
        "errors": [
            {},
            {"side": ['"hold" is not a valid choice.']},
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
            {},
        ],
    }
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_a_whole_batch_when_one_order_breaks_an_account_rule(api, accounts):
    batch = [order_body(), order_body(account_id="account_off"), order_body(account_id="account_hedge", leverage=25)]

    response = api.post(URL, batch, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {},
        {"account_id": ["Account 'account_off' is disabled."]},
        {"leverage": ["Leverage 25 is above this account's limit of 20 (max_leverage)."]},
    ]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_a_batch_that_repeats_a_request_id(api, accounts):
    batch = [order_body(request_id="twice"), order_body(request_id="once"), order_body(request_id="twice")]

    response = api.post(URL, batch, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"request_id": ["Repeated within this batch."]},
        {},
        {"request_id": ["Repeated within this batch."]},
    ]
    assert Order.objects.count() == 0


# --- idempotency ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_answers_a_repeated_request_id_with_the_same_order(api, accounts):
    first = api.post(URL, order_body(request_id="client-42"), format="json")
    second = api.post(URL, order_body(request_id="client-42"), format="json")

    assert first.status_code == 201
    assert second.status_code == 200
    body = second.json()
    assert_types_match(body, "submit.response.json")
    assert body["success"] is True
    assert body["request_id"] == "client-42"
    assert body["created"] is False
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_treats_the_same_amount_written_differently_as_the_same_order(api, accounts):
    api.post(URL, order_body(request_id="client-43", amount=0.001), format="json")

    again = api.post(URL, order_body(request_id="client-43", amount="0.00100"), format="json")

    assert again.status_code == 200
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_a_repeated_request_id_with_a_different_order(api, accounts):
    api.post(URL, order_body(request_id="client-42"), format="json")
    before = list(Order.objects.values())

    response = api.post(URL, order_body(request_id="client-42", amount=0.002), format="json")

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "error": "Conflict with an earlier order",
        "errors": {"request_id": ["The request_id 'client-42' was already used for a different order."]},
    }
    assert list(Order.objects.values()) == before


@pytest.mark.django_db
def test_it_answers_a_repeated_idempotency_key_with_the_same_order(api, accounts):
    first = api.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    second = api.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="key-1")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["request_id"] == first.json()["request_id"]
    assert second.json()["created"] is False
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_a_repeated_idempotency_key_with_a_different_order(api, accounts):
    api.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    before = list(Order.objects.values())

    response = api.post(URL, order_body(side="sell"), format="json", HTTP_IDEMPOTENCY_KEY="key-1")

    assert response.status_code == 409
    assert response.json()["errors"] == {"request_id": ["The Idempotency-Key was already used for a different order."]}
    assert list(Order.objects.values()) == before


@pytest.mark.django_db
def test_it_refuses_a_repeated_idempotency_key_with_another_request_id(api, accounts):
    api.post(URL, order_body(request_id="first-id"), format="json", HTTP_IDEMPOTENCY_KEY="key-2")
    before = list(Order.objects.values())

    response = api.post(URL, order_body(request_id="second-id"), format="json", HTTP_IDEMPOTENCY_KEY="key-2")

    assert response.status_code == 409
    assert response.json()["errors"] == {"request_id": ["The Idempotency-Key was already used for a different order."]}
    assert list(Order.objects.values()) == before


@pytest.mark.django_db
def test_it_scopes_idempotency_keys_per_user(accounts):
    alice, bob = client_for("alice"), client_for("bob")

    a = alice.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="same-key")
    b = bob.post(URL, seed_request(), format="json", HTTP_IDEMPOTENCY_KEY="same-key")

    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["request_id"] != b.json()["request_id"]
    assert sorted(Order.objects.values_list("created_by__username", flat=True)) == ["alice", "bob"]


@pytest.mark.django_db
def test_it_replays_a_whole_batch_by_idempotency_key(api, accounts):
    batch = [order_body(), order_body(side="sell")]
    first = api.post(URL, batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-key")
    second = api.post(URL, batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-key")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["request_ids"] == first.json()["request_ids"]
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_it_refuses_a_batch_that_was_partly_submitted_before(api, accounts):
    api.post(URL, order_body(request_id="part-1"), format="json")

    response = api.post(URL, [order_body(request_id="part-1"), order_body(request_id="part-2")], format="json")

    assert response.status_code == 409
    assert response.json()["errors"] == {
        "request_id": ["Part of this batch was submitted before; resubmit it exactly or with new ids."]
    }
    assert list(Order.objects.values_list("request_id", flat=True)) == ["part-1"]


def post_concurrently(live_server, body: dict, headers: dict, threads: int) -> list[tuple[int, dict]]:
    token = Token.objects.create(user=user_with_role("racer")).key
    start = threading.Barrier(threads)
    answers: list[tuple[int, dict]] = []

    def post():
        request = urllib.request.Request(
            f"{live_server.url}{URL}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json", **headers},
            method="POST",
        )
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, json.loads(exc.read())))

    workers = [threading.Thread(target=post) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(order_body(request_id="race-1"), {}, id="request-id"),
        pytest.param(seed_request(), {"Idempotency-Key": "race-key"}, id="idempotency-key"),
    ],
)
def test_it_creates_one_order_when_identical_submits_race(live_server, body, headers):
    sync_accounts()

    answers = post_concurrently(live_server, body, headers, threads=8)

    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({answer["request_id"] for _, answer in answers}) == 1
    assert Order.objects.count() == 1
    assert Order.objects.get().request_id == answers[0][1]["request_id"]


# --- what is stored ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_stores_priority_and_the_expiry(api, accounts):
    response = api.post(URL, order_body(priority=7, expires_in=90), format="json")

    assert response.status_code == 201
    order = Order.objects.get(request_id=response.json()["request_id"])
    assert order.priority == 7
    assert order.expires_at - order.created_at == timedelta(seconds=90)
    assert response.json()["order"]["priority"] == 7


@pytest.mark.django_db
def test_it_uses_the_accounts_default_leverage_and_margin_mode(api, accounts):
    response = api.post(URL, order_body(account_id="account_hedge", leverage=MISSING), format="json")

    assert response.status_code == 201
    order = Order.objects.get(request_id=response.json()["request_id"])
    assert (order.leverage, order.margin_mode) == (5, "isolated")


@pytest.mark.django_db
def test_it_keeps_an_explicit_leverage_and_margin_mode(api, accounts):
    response = api.post(URL, order_body(leverage=3, margin_mode="isolated"), format="json")

    order = Order.objects.get(request_id=response.json()["request_id"])
    assert (order.leverage, order.margin_mode) == (3, "isolated")


@pytest.mark.django_db
def test_it_gives_spot_orders_the_cash_margin_mode(api, accounts):
    body = order_body(account_id="account_spot", symbol="BTC/USDT", leverage=MISSING, margin_mode="cross")

    response = api.post(URL, body, format="json")

    assert response.status_code == 201
    order = Order.objects.get(request_id=response.json()["request_id"])
    assert order.margin_mode == "cash"
    assert order.leverage is None


@pytest.mark.django_db
def test_it_accepts_contracts_on_a_swap(api, accounts):
    response = api.post(URL, order_body(amount_unit="contracts", amount=2), format="json")

    assert response.status_code == 201
    assert Order.objects.get().amount_unit == "contracts"


def raw_post(checked_api, body: bytes):
    """POST a body as it is (not re-encoded by the test client), checked against the schema."""
    response = checked_api.client.generic("POST", URL, body, content_type="application/json")
    from tests.helpers import check_response

    check_response(checked_api.spec, "post", URL, response)
    return response


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,
        b'{"a": ' * 3000 + b"1" + b"}" * 3000,
        b"[" * 100000,
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b'{"amount": 1e400}',
        b'{"leverage": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe{}",
        b'{"symbol": "\\ud800"}',
        b'{"strategy_name": "a\\u0000b"}',
    ],
    ids=["deep-list", "deep-object", "unclosed", "nan", "infinity", "huge-float", "huge-int", "bad-utf8",
         "surrogate", "nul"],
)  # fmt: skip
def test_it_answers_hostile_json_with_a_400_and_a_message(checked_api, accounts, body):
    if body.startswith(b"{") and b"amount" not in body[:12] and not body.startswith(b'{"a"'):
        body = json.dumps(order_body()).encode()[:-1] + b", " + body[1:]  # a valid order but that one field
    elif body in (b'{"amount": NaN}', b'{"amount": Infinity}', b'{"amount": 1e400}'):
        body = json.dumps(order_body(amount=MISSING)).encode()[:-1] + b", " + body[1:]

    response = raw_post(checked_api, body)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["success"] is False and response.json()["error"]
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "batch",
    [[None], [None, {}], [1, "x", []], [[{"account_id": "account_main"}]], [{"side": "up"}, None]],
    ids=["null", "null-and-empty", "scalars", "nested-list", "mixed"],
)
def test_it_answers_every_bad_batch_with_a_list_of_objects_aligned_with_the_input(checked_api, accounts, batch):
    response = checked_api.post(URL, batch)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert isinstance(errors, list) and len(errors) == len(batch)
    assert all(isinstance(item, dict) and item for item in errors), errors
    assert all(isinstance(messages, list) and messages for item in errors for messages in item.values())
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_neither_reveals_nor_is_blocked_by_another_accounts_request_id(accounts):
    """Trader B's own request_id, already used on an account B may not see: B's order gets
    a server-issued id, re-sending finds it again, and nothing tells B about the other."""
    from tests.conftest import user_with_role

    alice, bob = APIClient(), APIClient()
    alice.force_authenticate(user_with_role("alice", "trader", accounts=["account_main"]))
    bob.force_authenticate(user_with_role("bob", "trader", accounts=["account_poit_main"]))
    first = alice.post(URL, order_body(request_id="SHARED-1"), format="json")
    mine = order_body(request_id="SHARED-1", account_id="account_poit_main")

    created = bob.post(URL, mine, format="json")
    again = bob.post(URL, mine, format="json")
    changed = bob.post(URL, {**mine, "amount": 0.002}, format="json")

    assert first.status_code == 201 and first.json()["request_id"] == "SHARED-1"
    assert created.status_code == 201 and created.json()["request_id"].startswith("ORD_")
    assert again.status_code == 200 and again.json()["request_id"] == created.json()["request_id"]
    assert changed.status_code == 409 and "account_main" not in changed.content.decode()
    assert "account_main" not in created.content.decode() + again.content.decode()
    assert Order.objects.count() == 2
    assert Order.objects.get(request_id="SHARED-1").account_id == "account_main"
    assert Order.objects.get(request_id=created.json()["request_id"]).account_id == "account_poit_main"
