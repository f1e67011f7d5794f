"""The execution journal: one whole JSON line per finished order, in the file of its day
in the configured time zone."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.models import Account, Order, OrderStatus
from orders.representation import NOT_RECORDED, OrderSerializer
from orders.services.journal import journal_append, journal_path
from tests.conftest import BASE_DIR, subprocess_env
from tests.helpers import make_order

SEED_FIELDS = [
    "request_id", "timestamp", "account_id", "symbol", "side", "order_type", "amount", "leverage",
    "strategy_name", "status", "order_id",
]  # fmt: skip


def finished_order(request_id: str, *, finished_at: datetime, **fields) -> Order:
    Account.objects.get_or_create(pk="account_main", defaults={"default_leverage": 10})
    values = {
        "request_id": request_id, "client_order_id": f"sc{request_id}", "order_id": "987654321",
        "filled_amount": Decimal("0.001"), "average_price": Decimal("65000"),
        "created_at": datetime(2026, 1, 1, 23, 29, 59, tzinfo=UTC), "wait_ms": 500, "finished_at": finished_at,
        **fields,
    }  # fmt: skip
    return make_order(**values)


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.django_db
def test_it_writes_one_line_per_call_with_the_apis_field_names(journal_dir):
    finished_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = finished_order("ORD_1", finished_at=finished_at)
    second = finished_order("ORD_2", finished_at=finished_at, status=OrderStatus.FAILED, order_id=None)

    journal_append(order=first)
    journal_append(order=second)

    path = journal_dir / "executions_20260101.jsonl"
    assert journal_path(finished_at.date()) == path
    lines = read_lines(path)
    assert [line["request_id"] for line in lines] == ["ORD_1", "ORD_2"]
    assert list(lines[0]) == [name for name in OrderSerializer.Meta.fields if name not in NOT_RECORDED]
    assert "actions" in NOT_RECORDED  # what the order allows now is no part of its record
    assert list(lines[0])[: len(SEED_FIELDS)] == SEED_FIELDS
    assert lines[0]["amount"] == 0.001 and lines[0]["average_price"] == 65000.0
    assert lines[0]["leverage"] == 10
    assert lines[0]["order_id"] == "987654321"
    assert lines[0]["timestamp"] == "2026-01-01T23:29:59Z"
    assert lines[0]["execution_ms"] == 0 and lines[0]["queue_wait_ms"] == 500
    assert (lines[1]["status"], lines[1]["order_id"]) == ("failed", None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("time_zone", "file_name"),
    [("Asia/Shanghai", "executions_20260102.jsonl"), ("UTC", "executions_20260101.jsonl")],
)
def test_it_names_the_file_by_the_day_in_the_configured_time_zone(journal_dir, settings, time_zone, file_name):
    settings.TIME_ZONE = time_zone
    order = finished_order("ORD_tz", finished_at=datetime(2026, 1, 1, 23, 30, tzinfo=UTC))

    journal_append(order=order)

    assert [p.name for p in journal_dir.iterdir()] == [file_name]
    assert read_lines(journal_dir / file_name)[0]["request_id"] == "ORD_tz"


@pytest.mark.django_db
def test_it_creates_the_log_directory(journal_dir, settings, tmp_path):
    nested = tmp_path / "a" / "b"
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "LOG_DIR": nested}
    order = finished_order("ORD_dir", finished_at=datetime(2026, 3, 4, 5, 6, tzinfo=UTC))

    journal_append(order=order)

    assert read_lines(nested / "executions_20260304.jsonl")[0]["request_id"] == "ORD_dir"


# Each writer builds unsaved orders (no database needed) with a long error message that
# makes every line far larger than a pipe buffer, waits for "go", then appends.
WRITER = """
import sys
from datetime import UTC, datetime
from decimal import Decimal
import django
django.setup()
from orders.models import Order
from orders.services.journal import journal_append
writer = int(sys.argv[1])
finished = datetime(2026, 5, 6, 7, 8, tzinfo=UTC)
print("ready", flush=True)
sys.stdin.readline()
for n in range(200):
    order = Order(
        request_id=f"W{writer}_{n}", client_order_id=f"w{writer}n{n}", account_id="acc", symbol="BTC/USDT:USDT",
        side="buy", order_type="market", amount=Decimal("1"), status="success", created_at=finished,
        finished_at=finished, error_message=str(writer) * 20000,
    )
    journal_append(order=order)
"""


def test_it_keeps_lines_whole_when_processes_append_concurrently(journal_dir):
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n)],
            cwd=BASE_DIR,
            env=subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(8)
    ]
    for writer in writers:
        assert writer.stdout.readline() == "ready\n"
    for writer in writers:  # start them together
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        writer.stdin.close()
        assert writer.wait(timeout=120) == 0

    raw = (journal_dir / "executions_20260506.jsonl").read_text()
    lines = [json.loads(line) for line in raw.splitlines()]  # a torn line would not parse
    assert raw.endswith("\n")
    assert len(lines) == 1600
    assert len({line["request_id"] for line in lines}) == 1600
    for line in lines:
        writer = line["request_id"][1]
        assert line["error_message"] == writer * 20000
