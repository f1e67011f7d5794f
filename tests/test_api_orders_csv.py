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
from rest_framework.test import APIClient

from orders.models import OrderStatus
from orders.serializers import OrderSerializer
from tests.api_helpers import make_order
from tests.conftest import user_with_role

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
    assert list(row) == list(api_order)
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
    monkeypatch.setattr("orders.selectors.SEARCH_MAX_MATCHES", 10)

    response = api.get(URL, {"q": "ORD_"}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert "More than 10 orders match 'ORD_'" in response.json()["errors"]["q"][0]
