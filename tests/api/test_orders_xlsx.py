"""GET /api/order-scheduler/orders.xlsx (and the CSV's byte order mark): the same rows,
filters, access rules and formula guard as orders.csv, in a workbook Excel opens."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from rest_framework.test import APIClient

from orders.models import OrderStatus
from tests.conftest import user_with_role
from tests.helpers import as_csv_text, make_order

CSV = "/api/order-scheduler/orders.csv"
XLSX = "/api/order-scheduler/orders.xlsx"
T0 = datetime(2026, 2, 21, 7, 30, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response).decode("utf-8-sig"))))


def xlsx_rows(response) -> list[list]:
    book = load_workbook(io.BytesIO(body(response)), read_only=True)
    return [list(row) for row in book["orders"].iter_rows(values_only=True)]


@pytest.fixture
def history(accounts):
    names = ["manual", "网格策略", '=HYPERLINK("x")', "+1", "@SUM(A1)", "-2"]
    return [
        make_order(
            created_at=T0 + timedelta(seconds=n),
            status=[OrderStatus.SUCCESS, OrderStatus.FAILED, OrderStatus.QUEUED][n % 3],
            account=["account_main", "account_hedge"][n % 2],
            strategy_name=names[n % len(names)],
            amount=Decimal("0.0000001") if n == 4 else Decimal("0.25"),
            price=Decimal("65000.50") if n % 3 == 0 else None,
            order_type="limit" if n % 3 == 0 else "market",
            error_message="-1 insufficient\x01 balance" if n == 5 else "",
        )
        for n in range(24)
    ]


@pytest.mark.parametrize(
    "params", [{}, {"account": "account_hedge", "status": "failed,success"}, {"strategy": "网格策略"}]
)
def test_it_holds_exactly_the_csvs_rows(api, history, params):
    from_csv = csv_rows(api.get(CSV, params))
    from_xlsx = xlsx_rows(api.get(XLSX, params))

    assert len(from_csv) > 1
    assert [[as_csv_text(cell) for cell in row] for row in from_xlsx] == [
        [cell.replace("\x01", "") for cell in row]
        for row in from_csv  # a workbook cannot hold control characters
    ]


def test_it_keeps_numbers_as_numbers_and_quotes_formulas(api, history):
    header, *rows = xlsx_rows(api.get(XLSX))
    by_id = {row[header.index("request_id")]: dict(zip(header, row, strict=True)) for row in rows}

    first = by_id[history[0].request_id]
    assert first["amount"] == 0.25 and first["price"] == 65000.5 and first["leverage"] == 10
    assert by_id[history[2].request_id]["strategy_name"] == '\'=HYPERLINK("x")'
    assert by_id[history[3].request_id]["strategy_name"] == "'+1"
    assert by_id[history[1].request_id]["strategy_name"] == "网格策略"
    assert by_id[history[4].request_id]["amount"] == 1e-07
    assert by_id[history[5].request_id]["error_message"] == "'-1 insufficient balance"


def test_it_answers_with_download_headers(api, history):
    response = api.get(XLSX)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"].startswith('attachment; filename="orders-')
    assert response["Content-Disposition"].endswith('.xlsx"')
    assert response["Cache-Control"] == "no-store"


def test_it_limits_a_restricted_user_to_their_accounts(history):
    client = APIClient()
    client.force_authenticate(user_with_role("xl", "viewer", ["account_hedge"]))

    header, *rows = xlsx_rows(client.get(XLSX))
    refused = client.get(XLSX, {"account": "account_main"})

    assert {row[header.index("account_id")] for row in rows} == {"account_hedge"}
    assert len(rows) == sum(o.account_id == "account_hedge" for o in history)
    assert refused.status_code == 403


def test_it_refuses_anonymous_and_bad_queries(client, api, history):
    assert client.get(XLSX).status_code == 401
    response = api.get(XLSX, {"status": "done", "limit": "3"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"status", "limit"}


def test_it_starts_the_csv_with_a_byte_order_mark_only_when_asked(api, history):
    plain = body(api.get(CSV))
    marked = body(api.get(CSV, {"bom": "true"}))

    assert not plain.startswith(b"\xef\xbb\xbf")
    assert marked == b"\xef\xbb\xbf" + plain
    assert "网格策略" in marked.decode("utf-8-sig")
    bad = api.get(CSV, {"bom": "maybe"}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["bom"]
