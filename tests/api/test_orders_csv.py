"""GET /api/order-scheduler/orders.csv: every order the order list's filters match, as
streamed CSV, under the same roles and account limits as the list."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import Order, OrderStatus
from orders.representation import NOT_RECORDED, OrderSerializer
from tests.conftest import user_with_role
from tests.helpers import make_order

URL = "/api/order-scheduler/orders.csv"
LIST = "/api/order-scheduler/orders"
T0 = datetime(2026, 2, 21, 7, 30, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


def client_for(role: str = "viewer", accounts=None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role(f"csv-{role}-{len(accounts or ())}", role, accounts))
    return client


def every_page(api, params: dict) -> list[str]:
    """The request ids the order list shows for `params`, paging to the end."""
    ids, cursor = [], None
    while True:
        body = api.get(LIST, {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}).json()
        ids += [order["request_id"] for order in body["orders"]]
        if not body["has_more"]:
            return ids
        cursor = body["next_cursor"]


@pytest.fixture
def history(accounts):
    made = []
    for n in range(40):
        made.append(
            make_order(
                created_at=T0 + timedelta(seconds=n // 2),  # pairs share an instant
                status=[OrderStatus.SUCCESS, OrderStatus.FAILED, OrderStatus.QUEUED, OrderStatus.EXPIRED][n % 4],
                account=["account_main", "account_hedge"][n % 3 == 0],
                strategy_name=["manual", "grid_btc"][n % 5 == 0],
                symbol=["BTC/USDT:USDT", "ETH/USDT:USDT"][n % 7 == 0],
                side=["buy", "sell"][n % 2],
            )
        )
    return made


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "failed,expired"},
        {"account": "account_hedge"},
        {"account": "account_main", "status": "queued"},
        {"strategy": "grid_btc"},
        {"symbol": "ETH/USDT:USDT", "side": "sell"},
        {"since": "2026-02-21T07:30:05Z", "until": "2026-02-21T07:30:12Z"},
        {"q": "ORD_T"},
    ],
)
def test_it_exports_exactly_the_orders_the_list_shows_in_the_same_order(api, history, params):
    response = api.get(URL, params)

    assert response.status_code == 200
    assert [row["request_id"] for row in rows(response)] == every_page(api, params)


def test_it_writes_the_apis_fields_and_values(api, accounts):
    order = make_order(
        created_at=T0,
        status=OrderStatus.FAILED,
        amount=Decimal("0.0000001"),
        price=Decimal("65000.50"),
        order_type="limit",
        error_message='Rejected: "price", too far',
    )

    [row] = rows(api.get(URL))

    api_order = OrderSerializer(order).data
    assert list(row) == [name for name in api_order if name not in NOT_RECORDED]
    assert "actions" not in row
    assert row["amount"] == "0.0000001" and row["price"] == "65000.5"
    assert row["timestamp"] == api_order["timestamp"] == "2026-02-21T07:30:00Z"
    assert row["error_message"] == 'Rejected: "price", too far'
    assert row["reduce_only"] == "false" and row["order_id"] == "" and row["queue_wait_ms"] == "40"


def test_it_quotes_cells_a_spreadsheet_would_run_as_formulas(api, accounts):
    make_order(created_at=T0, strategy_name="=HYPERLINK(1)")

    [row] = rows(api.get(URL))

    assert row["strategy_name"] == "'=HYPERLINK(1)"


def test_it_answers_with_download_headers(api, accounts):
    make_order(created_at=T0)

    response = api.get(URL)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="orders-')
    assert response["Content-Disposition"].endswith('.csv"')
    assert response["Cache-Control"] == "no-store"


def test_it_streams_a_large_export_a_page_at_a_time(api, accounts):
    orders = [make_order(created_at=T0 + timedelta(milliseconds=n)) for n in range(2500)]

    response = api.get(URL)
    content = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as first:
        header, first_row = next(content), next(content)
    with CaptureQueriesContext(connection) as rest:
        lines = [header, first_row, *content]

    # the first line came from the first page (ids from the index, then their rows);
    # the other two pages were read only as the response was consumed
    assert len(first.captured_queries) == 2 and "LIMIT 1000" in first.captured_queries[0]["sql"]
    assert len(rest.captured_queries) == 4
    assert len(lines) == 2501
    ids = [line.decode().split(",", 1)[0] for line in lines[1:]]
    assert ids == [o.request_id for o in reversed(orders)]


def test_it_limits_a_restricted_user_to_their_accounts(history):
    client = client_for("viewer", accounts=["account_hedge"])

    exported = rows(client.get(URL))
    refused = client.get(URL, {"account": "account_main"})

    assert {row["account_id"] for row in exported} == {"account_hedge"}
    assert len(exported) == sum(o.account_id == "account_hedge" for o in history)
    assert refused.status_code == 403
    assert refused.json() == {"success": False, "error": "You may not see account 'account_main'."}


def test_it_lets_every_role_export_and_refuses_anyone_else(client, history, django_user_model):
    assert client_for("viewer").get(URL).status_code == 200
    assert client.get(URL).status_code == 401
    nobody = APIClient()
    nobody.force_authenticate(django_user_model.objects.create_user("nobody"))
    assert nobody.get(URL).status_code == 403


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "done"}, "status"),
        ({"limit": "10"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
    ],
)
def test_it_refuses_a_bad_query_with_a_message_per_field(api, history, params, field):
    response = api.get(URL, params, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"] == "Invalid query" and list(body["errors"]) == [field]


def test_it_refuses_a_search_too_broad_to_read_from_an_index(api, history, monkeypatch):
    monkeypatch.setattr("orders.selectors.history.SEARCH_MAX_MATCHES", 10)

    response = api.get(URL, {"q": "ORD_"}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert "More than 10 orders match 'ORD_'" in response.json()["errors"]["q"][0]


def many_orders(count: int, *, account: str = "account_main") -> None:
    """`count` finished orders in a few bulk inserts (one insert each would take minutes)."""
    from orders.services.submit import client_order_id_for

    start = timezone.now() - timedelta(days=1)
    Order.objects.bulk_create(
        (
            Order(
                request_id=f"ORD_BULK{n:08d}", client_order_id=client_order_id_for(f"ORD_BULK{n:08d}"),
                account_id=account, symbol="BTC/USDT:USDT", side="buy", order_type="market",
                amount=Decimal("0.001"), leverage=10, margin_mode="cross", strategy_name="bulk",
                status=OrderStatus.SUCCESS, created_at=start + timedelta(milliseconds=n), attempts=1,
            )
            for n in range(count)
        ),
        batch_size=2000,
    )  # fmt: skip


def test_it_refuses_an_export_over_the_row_bound_with_a_400_saying_how_to_narrow(accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "EXPORT_MAX_ROWS": 50}
    many_orders(51)
    client = client_for()

    refused = client.get(URL)
    narrowed = client.get(URL, {"until": "2020-01-01"})
    exact = client.get(URL, {"account": "account_main", "status": "success"})

    assert refused.status_code == 400 and not isinstance(refused, StreamingHttpResponse)
    assert refused.json()["error"] == "Export too large"
    message = refused.json()["errors"]["non_field_errors"][0]
    assert message.startswith("More than 50 orders match; narrow the export with since and until")
    assert narrowed.status_code == 200 and rows(narrowed) == []
    Order.objects.filter(request_id="ORD_BULK00000050").delete()
    assert exact.status_code == 400 and len(rows(client.get(URL))) == 50
    assert Order.objects.count() == 50


def test_it_throttles_exports_per_user_with_retry_after(accounts, monkeypatch):
    from orders.api.permissions import ScopedThrottle

    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {"export": "2/min", "submit": "100/min"})
    make_order(created_at=timezone.now())
    viewer, other = client_for("viewer"), client_for("trader")

    answers = [viewer.get(URL) for _ in range(3)]
    others = other.get(URL)

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0 and answers[2].json()["success"] is False
    assert others.status_code == 200  # counted per user


@pytest.mark.e2e
def test_it_keeps_trading_calls_answering_while_exports_run(service_factory, accounts):
    """gunicorn as `make run` starts it, with one worker of 4 threads: a viewer opens 8
    large exports at once and never reads them (each would hold a thread), yet a
    trader's submit answers at once: past the export rate the exports are refused with
    429 before they take a thread."""
    import concurrent.futures
    import http.client
    import json as json_module
    import socket

    from rest_framework.authtoken.models import Token

    from tests.conftest import user_with_role, wait_for

    many_orders(60_000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service_factory(
        args=("--no-cluster", "--host", "127.0.0.1", "--port", str(port), "--web-workers", "1"),
        env={"ORDER_SCHEDULER_EXPORT_RATE": "2/min", "ORDER_SCHEDULER_EXPORT_MAX_ROWS": "100000"},
    )
    viewer = Token.objects.create(user=user_with_role("reader", "viewer")).key
    trader = Token.objects.create(user=user_with_role("desk", "trader")).key

    def healthy():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=30, message="the web server")

    def open_export():
        """Start an export and read only its status line: the rest stays unread."""
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/order-scheduler/orders.csv", headers={"Authorization": f"Token {viewer}"})
        return connection, connection.getresponse()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        exports = list(pool.map(lambda _: open_export(), range(8)))
    body = json_module.dumps({"account_id": "account_main", "symbol": "BTC/USDT:USDT", "side": "buy",
                              "order_type": "market", "amount": 0.001})  # fmt: skip
    submit = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    submit.request("POST", "/api/order-scheduler/submit", body=body,
                   headers={"Authorization": f"Token {trader}", "Content-Type": "application/json"})  # fmt: skip
    answer = submit.getresponse()

    assert answer.status == 201, answer.read()[:300]
    assert sorted(response.status for _, response in exports) == [200, 200] + [429] * 6
    assert Order.objects.filter(strategy_name="manual").count() == 1
    for held, _ in exports:
        held.close()
