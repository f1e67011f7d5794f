import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection

from orders.models import Order, OrderStatus
from orders.representation import order_record
from tests.conftest import BASE_DIR, subprocess_env
from tests.helpers import SEED_TIME, as_csv_text, make_seed_order

T0 = SEED_TIME


def export(*args: str) -> tuple[list[str], str]:
    out, err = StringIO(), StringIO()
    call_command("export_orders", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines(keepends=True), err.getvalue()


def reference_lines(orders) -> list[str]:
    """What the API's one representation gives for these orders, as journal lines."""
    return [json.dumps(order_record(order), ensure_ascii=False) + "\n" for order in orders]


def ordered(**filters) -> list[Order]:
    return list(Order.objects.filter(**filters).select_related("retry_of").order_by("created_at", "id"))


def tricky_orders() -> None:
    """Orders exercising every kind of value the representation formats."""
    first = make_seed_order(
        "ORD_1",
        started_at=T0 + timedelta(microseconds=40_123),
        finished_at=T0 + timedelta(seconds=1, microseconds=7),
        filled_amount=Decimal("0.001"),
        average_price=Decimal("65012.123456789012"),
        fee=Decimal("-0.000000000001"),
        fee_currency="USDT",
        exchange_state="filled",
        attempts=2,
    )
    make_seed_order(
        "ORD_2:retry",
        retry_of=first,
        status=OrderStatus.FAILED,
        order_id=None,
        amount=Decimal("123456789012345.5"),
        error_code="51008",
        error_message='Insufficient margin "余额不足"\nsecond line \\ tab\t',
        created_at=T0 + timedelta(microseconds=1),
        priority=-5,
        reduce_only=True,
    )
    make_seed_order(
        "spot.limit-3",
        symbol="BTC/USDT",
        order_type="limit",
        price=Decimal("64000"),
        amount=Decimal("5"),
        leverage=None,
        margin_mode="cash",
        strategy_name="网格",
        status=OrderStatus.QUEUED,
        order_id=None,
        expires_at=T0 + timedelta(hours=1),
        created_at=T0 - timedelta(days=400),
    )
    make_seed_order(
        "ORD_4", account_id="account_hedge", status=OrderStatus.UNKNOWN, started_at=T0, amount_unit="contracts"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("time_zone", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_it_writes_lines_byte_identical_to_order_record(accounts, settings, time_zone):
    settings.TIME_ZONE = time_zone
    tricky_orders()

    lines, err = export("--chunk-size", "2")

    assert lines == reference_lines(ordered())
    assert err == "exported 4 order(s)\n"
    assert [json.loads(line)["request_id"] for line in lines] == ["spot.limit-3", "ORD_1", "ORD_4", "ORD_2:retry"]


@pytest.mark.django_db
def test_it_writes_a_file_with_the_api_field_names(accounts, tmp_path):
    tricky_orders()
    target = tmp_path / "orders.jsonl"

    out = StringIO()
    call_command("export_orders", "--output", str(target), stdout=out)

    assert out.getvalue() == f"exported 4 order(s) to {target}\n"
    assert target.read_text(encoding="utf-8").splitlines(keepends=True) == reference_lines(ordered())
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[1])
    seed_keys = ["request_id", "timestamp", "account_id", "symbol", "side", "order_type", "amount", "leverage",
                 "strategy_name", "status", "order_id"]  # fmt: skip
    assert list(first)[: len(seed_keys)] == seed_keys
    assert (first["request_id"], first["amount"], first["timestamp"]) == ("ORD_1", 0.001, "2026-02-21T07:30:00Z")
    assert [p.name for p in tmp_path.iterdir()] == ["orders.jsonl"]  # no temporary file left


@pytest.mark.django_db
def test_it_filters_by_local_dates_account_status_and_strategy(accounts, settings):
    settings.TIME_ZONE = "Asia/Shanghai"  # UTC+8: local midnight of the 21st is 16:00 UTC on the 20th
    make_seed_order("before", created_at=datetime(2026, 2, 20, 15, 59, 59, tzinfo=UTC))
    make_seed_order("first-local-minute", created_at=datetime(2026, 2, 20, 16, 0, tzinfo=UTC))
    make_seed_order("failed", created_at=datetime(2026, 2, 21, 3, 0, tzinfo=UTC), status=OrderStatus.FAILED)
    make_seed_order("hedge", created_at=datetime(2026, 2, 21, 4, 0, tzinfo=UTC), account_id="account_hedge")
    make_seed_order("manual", created_at=datetime(2026, 2, 21, 5, 0, tzinfo=UTC), strategy_name="manual")
    make_seed_order("next-local-day", created_at=datetime(2026, 2, 21, 16, 0, tzinfo=UTC))

    def ids(*args):
        return [json.loads(line)["request_id"] for line in export(*args)[0]]

    assert ids("--since", "2026-02-21", "--until", "2026-02-22") == [
        "first-local-minute", "failed", "hedge", "manual",
    ]  # fmt: skip
    assert ids("--until", "2026-02-21T00:00:00") == ["before"]  # naive: local time
    assert ids("--since", "2026-02-21T05:00:00Z") == ["manual", "next-local-day"]  # offset honoured
    assert ids("--since", "2026-02-21T12:00+08:00", "--until", "2026-02-21T13:00+08:00") == ["hedge"]
    assert ids("--account", "account_hedge") == ["hedge"]
    assert ids("--status", "failed, cancelled") == ["failed"]
    assert ids("--status", "success", "--strategy", "manual") == ["manual"]
    assert ids("--strategy", "nobody") == []


@pytest.mark.django_db
def test_it_pages_through_orders_sharing_one_timestamp_exactly_once(accounts):
    for i in range(11):
        make_seed_order(f"same-{i:02d}", created_at=T0)
    make_seed_order("earlier", created_at=T0 - timedelta(seconds=1))

    lines, _ = export("--chunk-size", "3")

    assert [json.loads(line)["request_id"] for line in lines] == ["earlier"] + [f"same-{i:02d}" for i in range(11)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "yesterday"], "--since must be an ISO 8601 date or datetime"),
        (["--until", "2026-02-30"], "--until must be an ISO 8601 date or datetime"),
        (["--since", "2026-02-22", "--until", "2026-02-21"], "--since must be before --until"),
        (["--status", "done"], "unknown status 'done'; use one or more of queued, processing"),
        (["--status", " , "], "--status needs at least one status"),
        (["--account", "account_nope"], "unknown account 'account_nope'"),
        (["--chunk-size", "0"], "--chunk-size must be at least 1"),
        (["--output", "/nonexistent-dir/orders.jsonl"], "directory /nonexistent-dir does not exist"),
    ],
)
def test_it_refuses_bad_arguments_with_one_line_and_writes_nothing(accounts, tmp_path, args, message):
    make_seed_order("ORD_1")
    target = tmp_path / "out" / "orders.jsonl"
    target.parent.mkdir()
    out = StringIO()

    if "--output" not in args:
        args = [*args, "--output", str(target)]

    with pytest.raises(CommandError) as failure:
        call_command("export_orders", *args, stdout=out)

    assert message in str(failure.value)
    assert "\n" not in str(failure.value)
    assert out.getvalue() == ""
    assert list(target.parent.iterdir()) == []


@pytest.mark.django_db
def test_it_exits_non_zero_with_one_readable_line_from_the_shell(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(BASE_DIR / "manage.py"),
            "export_orders",
            "--since",
            "last week",
            "-o",
            str(tmp_path / "x"),
        ],
        cwd=BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "CommandError: --since must be an ISO 8601 date or datetime (2026-02-21 or 2026-02-21T15:30), got 'last week'"
    ]
    assert not list(tmp_path.glob("*x*"))


@pytest.mark.django_db
def test_it_keeps_the_previous_file_whole_when_an_export_fails_midway(accounts, tmp_path):
    for i in range(5):
        make_seed_order(f"ORD_{i}", created_at=T0 + timedelta(seconds=i))
    broken = make_seed_order("ORD_broken", created_at=T0 + timedelta(days=1))
    with connection.cursor() as cursor:  # a corrupt last row, which fails as it is read back
        if connection.vendor == "postgresql":  # a time Python cannot hold
            cursor.execute("UPDATE orders_order SET created_at = '20000-01-01 00:00:00+00' WHERE id = %s", [broken.pk])
            failure = DataError
        else:  # an amount that is not a number
            cursor.execute("UPDATE orders_order SET amount = 'garbage' WHERE id = %s", [broken.pk])
            failure = TypeError
    target = tmp_path / "orders.jsonl"
    target.write_text("the previous export\n")

    with pytest.raises(failure):
        call_command("export_orders", "--output", str(target), "--chunk-size", "1", stdout=StringIO())

    assert target.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["orders.jsonl"]


@pytest.mark.django_db
def test_it_reads_a_datetime_without_offset_as_local_time(accounts, settings):
    settings.TIME_ZONE = "America/New_York"
    local = datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("America/New_York"))  # 13:00 UTC (EDT)
    make_seed_order("at-nine-local", created_at=local)
    make_seed_order("a-minute-before", created_at=local - timedelta(minutes=1))

    lines, _ = export("--since", "2026-07-01T09:00:00")

    assert [json.loads(line)["request_id"] for line in lines] == ["at-nine-local"]
    assert json.loads(lines[0])["timestamp"] == "2026-07-01T09:00:00-04:00"


def test_it_writes_the_apis_csv_and_an_xlsx_of_the_same_rows(accounts, api, tmp_path):
    import csv
    import io

    from openpyxl import load_workbook

    tricky_orders()
    for n in range(5):
        make_seed_order(f"ORD_X{n}", strategy_name=["网格", "=1+1"][n % 2], account_id="account_hedge")
    api_csv = b"".join(
        api.get("/api/order-scheduler/orders.csv", {"account": "account_hedge", "bom": "1"}).streaming_content
    )

    lines, _ = export("--format", "csv", "--bom", "--account", "account_hedge")
    call_command("export_orders", "--format", "csv", "--account", "account_hedge", "-o", str(tmp_path / "o.csv"))
    out, _ = export("--format", "xlsx", "--account", "account_hedge", "-o", str(tmp_path / "o.xlsx"))

    assert "".join(lines).encode() == api_csv
    assert (tmp_path / "o.csv").read_bytes() == api_csv.removeprefix(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(api_csv.decode("utf-8-sig"))))
    assert out == [f"exported {len(rows) - 1} order(s) to {tmp_path / 'o.xlsx'}\n"]
    book = load_workbook(tmp_path / "o.xlsx", read_only=True)
    cells = [[as_csv_text(value) for value in row] for row in book["orders"].iter_rows(values_only=True)]
    assert cells == rows
    assert len(cells) > 5 and "'=1+1" in {row[rows[0].index("strategy_name")] for row in cells}


def test_it_refuses_an_xlsx_without_a_file_and_a_bom_outside_csv(accounts):
    with pytest.raises(CommandError, match="needs --output"):
        export("--format", "xlsx")
    with pytest.raises(CommandError, match="--bom applies to --format csv only"):
        export("--bom")
    with pytest.raises(CommandError, match="unknown status 'done'"):
        export("--format", "csv", "--status", "done")
