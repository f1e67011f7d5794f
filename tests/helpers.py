"""The suite's helpers: `submit` (the one way a test submits an order: through the HTTP
API), `make_order` (the one factory for an order row in a given state without the API),
the seed contract check, and a client whose every JSON response must validate against
the published OpenAPI schema."""

import copy
import itertools
import json
import re
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from jsonschema import Draft202012Validator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Order, OrderStatus
from orders.services.submit import client_order_id_for
from tests.conftest import CONTRACT_DIR

# Debian's Chromium, driven by Playwright (no browser download): the dashboard's browser
# tests and bench/dashboard.py.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

_numbers = itertools.count(1)


def contract(name: str) -> dict:
    """The seed's example response for an endpoint (status, orders, stats, submit)."""
    return json.loads((CONTRACT_DIR / f"{name}.response.json").read_text())


ORDER = {"symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": Decimal("0.001")}


def submit(client=None, *, account: str = "account_main", count: int | None = None, **fields) -> Order | list[Order]:
    """Submit an order through the HTTP API, as a client would, and return it as stored.

    `client` is an APIClient (or a LiveClient for a running server); without one, a
    superuser's. The order is ORDER on `account` with `fields` on top. With `count`, that
    many copies go in one batch request and the list of stored orders comes back."""
    body = {**ORDER, "account_id": account, **fields}
    client = client or _submitter()
    response = client.post("/api/order-scheduler/submit", body if count is None else [body] * count, format="json")
    assert response.status_code == 201, response.content
    answer = response.json()
    if count is None:
        return Order.objects.get(request_id=answer["request_id"])
    stored = Order.objects.in_bulk(answer["request_ids"], field_name="request_id")
    return [stored[request_id] for request_id in answer["request_ids"]]


def _submitter() -> APIClient:
    """An API client for a superuser kept for the helper (one per test database)."""
    user, created = get_user_model().objects.get_or_create(
        username="submitter", defaults={"is_superuser": True, "is_staff": True}
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


class LiveClient:
    """A strategy's client of a running server: real HTTP through `requests`, a token."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.token = token

    def post(self, path: str, data=None, format="json") -> requests.Response:
        return requests.post(
            f"{self.url}{path}",
            data=json.dumps(data, cls=DjangoJSONEncoder),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
            timeout=10,
        )


def free_port() -> int:
    """A port the OS reports free, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url):
    """The JSON a running server answers at `url`, or None while it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def make_order(
    *,
    created_at: datetime,
    status: str = OrderStatus.SUCCESS,
    account: str = "account_main",
    wait_ms: float | None = 40,
    run_ms: float | None = 150,
    **fields,
) -> Order:
    """An order row as the scheduler leaves it: started `wait_ms` after creation if it
    ever started, finished `run_ms` later if it finished at the exchange."""
    number = next(_numbers)
    request_id = fields.pop("request_id", f"ORD_T{number:07d}")
    started = finished = None
    if status in (OrderStatus.SUCCESS, OrderStatus.FAILED, *OrderStatus.in_flight()) and wait_ms is not None:
        started = created_at + timedelta(milliseconds=wait_ms)
        if status in (OrderStatus.SUCCESS, OrderStatus.FAILED) and run_ms is not None:
            finished = started + timedelta(milliseconds=run_ms)
    values = {
        "request_id": request_id,
        "client_order_id": client_order_id_for(request_id),
        "account_id": account,
        "symbol": "BTC/USDT:USDT",
        "side": "buy",
        "order_type": "market",
        "amount": Decimal("0.001"),
        "leverage": 10,
        "margin_mode": "cross",
        "strategy_name": "manual",
        "status": status,
        "order_id": f"98{number:09d}" if status == OrderStatus.SUCCESS else None,
        "created_at": created_at,
        "started_at": started,
        "finished_at": finished,
        "attempts": 1 if started else 0,
    }
    if status == OrderStatus.FAILED:
        values |= {"error_code": "paper_insufficient_funds", "error_message": "Insufficient balance"}
    return Order.objects.create(**(values | fields))


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def assert_matches_contract(live, example, path: str = "$", nullable: tuple[str, ...] = ("order_id",)) -> None:
    """Every key of the seed's example is in the live response with the same JSON type,
    recursively (each item of a list against the example's first item). A key named
    in `nullable` may also be null: the seed shows it filled in."""
    if live is None and path.rsplit(".", 1)[-1] in nullable:
        return
    assert json_type(live) == json_type(example), f"{path} is {json_type(live)}, the seed has {json_type(example)}"
    if isinstance(example, dict):
        for key, value in example.items():
            assert key in live, f"{path}.{key} is missing"
            assert_matches_contract(live[key], value, f"{path}.{key}", nullable)
    elif isinstance(example, list) and example:
        for index, item in enumerate(live):
            assert_matches_contract(item, example[0], f"{path}[{index}]", nullable)


def _closed(node):
    """The schema with every object that lists its properties closed to others, so a
    key the schema does not document fails validation too."""
    if isinstance(node, dict):
        node = {key: _closed(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


class SchemaError(AssertionError):
    pass


def check_response(spec: dict, method: str, url: str, response) -> None:
    """Validate a JSON response against its operation's documented response for that
    status code; an undocumented path, method or status code fails too."""
    if not response.get("Content-Type", "").startswith("application/json"):
        return
    path = urlsplit(url).path
    templates = [t for t in spec["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)]
    if not templates:
        raise SchemaError(f"{path} is not in the schema")
    template = templates[0]
    operation = spec["paths"][template].get(method)
    if operation is None:
        raise SchemaError(f"{method.upper()} {template} is not in the schema")
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        raise SchemaError(f"{method.upper()} {template} answered {response.status_code}, which is not documented")
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator(
        {**copy.deepcopy(schema), "components": _closed(spec["components"])},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path)
        raise SchemaError(f"{method.upper()} {path} {response.status_code} at /{where}: {errors[0].message}")


class CheckedClient:
    """An API client whose every JSON response is validated against the schema."""

    def __init__(self, client: APIClient, spec: dict):
        self.client = client
        self.spec = spec

    def get(self, url: str, data=None, **extra):
        response = self.client.get(url, data, **extra)
        check_response(self.spec, "get", url, response)
        return response

    def post(self, url: str, data=None, format="json", **extra):
        response = self.client.post(url, data, format=format, **extra)
        check_response(self.spec, "post", url, response)
        return response


_published: dict = {}


def published_schema(client: APIClient) -> dict:
    """The schema as /api/schema/ publishes it (fetched once per test run)."""
    if not _published:
        response = client.get("/api/schema/", {"format": "json"})
        assert response.status_code == 200, response.content[:300]
        _published.update(json.loads(response.content))
    return _published


def query_plans(captured_queries) -> list[tuple[str, list[str]]]:
    """(sql, SQLite's EXPLAIN QUERY PLAN lines) of each captured query on the order table."""
    from django.db import connection

    plans = []
    with connection.cursor() as cursor:
        for query in captured_queries:
            if '"orders_order"' in query["sql"]:
                cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                plans.append((query["sql"], [row[-1] for row in cursor.fetchall()]))
    return plans


SEED_TIME = datetime(2026, 2, 21, 7, 30, tzinfo=UTC)


def make_seed_order(request_id: str, **fields) -> Order:
    """make_order's row shaped like the seed report's example: success, 0.001
    BTC/USDT:USDT on account_main, strategy bottom_signal_long, never started."""
    seed = {"created_at": SEED_TIME, "strategy_name": "bottom_signal_long", "order_id": "987654321", "wait_ms": None}
    return make_order(request_id=request_id, **(seed | fields))


def as_csv_text(value) -> str:
    """A workbook cell as the CSV writes it: numbers in full, empty cells empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    return str(value)


def failed_order(account: str = "account_spot") -> Order:
    """An order that failed on the paper venue: above the account's max_amount (10),
    submitted and drained."""
    from orders.services import drain

    order = submit(account=account, symbol="BTC/USDT", amount=Decimal("50"))
    drain.drain_account(account_id=account)
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    return order
