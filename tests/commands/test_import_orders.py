import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, Order, OrderStatus
from orders.services.submit import client_order_id_for
from tests.conftest import BASE_DIR, subprocess_env
from tests.helpers import SEED_TIME, make_seed_order

T0 = SEED_TIME

# The seed report's order example (contract/orders.response.json), as its older system
# wrote it to executions_YYYYMMDD.jsonl.
SEED_LINE = {
    "request_id": "ORD_1234567890",
    "timestamp": "2026-02-21T15:30:00",
    "account_id": "account_main",
    "symbol": "BTC/USDT:USDT",
    "side": "buy",
    "order_type": "market",
    "amount": 0.001,
    "leverage": 10,
    "strategy_name": "bottom_signal_long",
    "status": "success",
    "order_id": "987654321",
}


def seed(**changes) -> dict:
    return {**SEED_LINE, **changes}


def write_jsonl(path, lines) -> str:
    text = "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_import(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = StringIO(), StringIO()
    try:
        call_command("import_orders", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def snapshot() -> list[tuple]:
    return list(Order.objects.order_by("id").values_list())


@pytest.mark.django_db
def test_it_imports_the_seed_line_reading_its_naive_timestamp_as_local_time(accounts, settings, tmp_path):
    settings.TIME_ZONE = "Asia/Shanghai"
    path = write_jsonl(tmp_path / "executions_20260221.jsonl", [SEED_LINE])

    out, err, failure = run_import(path)

    assert failure is None and err == ""
    assert out == "imported 1, skipped as existing 0, rejected 0\n"
    order = Order.objects.get()
    assert order.request_id == "ORD_1234567890"
    assert order.created_at == datetime(2026, 2, 21, 7, 30, tzinfo=UTC)  # 15:30 in Shanghai
    assert order.client_order_id == client_order_id_for("ORD_1234567890")
    assert (order.account_id, order.symbol, order.side, order.order_type) == (
        "account_main", "BTC/USDT:USDT", "buy", "market",
    )  # fmt: skip
    assert (order.amount, order.leverage, order.strategy_name) == (Decimal("0.001"), 10, "bottom_signal_long")
    assert (order.status, order.order_id, order.attempts, order.payload_hash) == ("success", "987654321", 0, "")


@pytest.mark.django_db
def test_it_honours_an_offset_in_the_timestamp(accounts, settings, tmp_path):
    settings.TIME_ZONE = "Asia/Shanghai"
    path = write_jsonl(tmp_path / "a.jsonl", [seed(timestamp="2026-02-21T15:30:00.250-05:00")])

    run_import(path)

    assert Order.objects.get().created_at == datetime(2026, 2, 21, 20, 30, 0, 250000, tzinfo=UTC)


@pytest.mark.django_db
def test_it_round_trips_an_export_into_an_empty_database_identically(accounts, settings, tmp_path):
    settings.TIME_ZONE = "Europe/Berlin"
    original = make_seed_order(
        "ORD_1",
        started_at=T0 + timedelta(microseconds=40_123),
        finished_at=T0 + timedelta(seconds=1, microseconds=7),
        filled_amount=Decimal("0.001"),
        average_price=Decimal("65012.123456"),
        fee=Decimal("-0.000000000001"),
        fee_currency="USDT",
        exchange_state="filled",
        attempts=2,
    )
    make_seed_order(
        "ORD_2:retry",
        retry_of=original,
        status=OrderStatus.FAILED,
        order_id=None,
        error_code="51008",
        error_message='Insufficient margin "余额不足"\nsecond line',
        created_at=T0 + timedelta(microseconds=1),
        priority=-5,
        reduce_only=True,
        amount_unit="contracts",
    )
    make_seed_order("ORD_3", symbol="BTC/USDT", order_type="limit", price=Decimal("64000"), amount=Decimal("5"),
               leverage=None, margin_mode="cash", strategy_name="网格", status=OrderStatus.CANCELLED, order_id=None,
               expires_at=T0 + timedelta(hours=1), created_at=T0 - timedelta(days=400))  # fmt: skip
    make_seed_order("ORD_4", account_id="account_hedge", status=OrderStatus.EXPIRED, order_id=None, created_at=T0)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    call_command("export_orders", "-o", str(first), stdout=StringIO())
    Order.objects.all().delete()
    Account.objects.all().delete()

    out, err, failure = run_import(str(first))
    call_command("export_orders", "-o", str(second), stdout=StringIO())

    assert failure is None and err == ""
    assert "imported 4, skipped as existing 0, rejected 0" in out
    assert second.read_bytes() == first.read_bytes()
    assert Order.objects.get(request_id="ORD_2:retry").retry_of.request_id == "ORD_1"


@pytest.mark.django_db
def test_it_skips_lines_whose_request_id_exists_and_never_overwrites_them(accounts, tmp_path):
    make_seed_order("ORD_1234567890", amount=Decimal("7"), order_id="111", status=OrderStatus.FAILED)
    before = snapshot()
    path = write_jsonl(tmp_path / "a.jsonl", [SEED_LINE, seed(request_id="ORD_2"), seed(request_id="ORD_2")])

    out, err, failure = run_import(path)
    after_first = snapshot()
    out_again, _, _ = run_import(path)

    assert failure is None and err == ""
    assert out == "imported 1, skipped as existing 2, rejected 0\n"
    assert out_again == "imported 0, skipped as existing 3, rejected 0\n"
    assert after_first[0] == before[0]  # the existing order is untouched
    assert snapshot() == after_first
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_it_reports_each_line_it_cannot_take_and_imports_the_rest(accounts, tmp_path):
    make_seed_order("ORD_existing")
    Order.objects.filter(request_id="ORD_existing").update(client_order_id="taken1")
    before = snapshot()
    path = write_jsonl(
        tmp_path / "executions_20260221.jsonl",
        [
            seed(request_id="ok-1"),
            "{not json",
            seed(request_id="queued-1", status="queued"),
            seed(request_id="proc-1", status="processing"),
            seed(request_id="bad-side", side="long"),
            seed(request_id="bad-amount", amount=0),
            seed(request_id="bad-symbol", symbol="BTCUSDT"),
            {k: v for k, v in seed(request_id="no-time").items() if k != "timestamp"},
            "[1, 2]",
            seed(request_id="bad id with spaces"),
            seed(request_id="dup-cid", client_order_id="taken1"),
            seed(request_id="bad-account", account_id="no such account!"),
            "",
            seed(request_id="ok-2", note="kept elsewhere"),
        ],
    )

    out, err, failure = run_import(path, "--chunk-size", "3")

    assert err.splitlines() == [
        f"{path}:2: not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        f"{path}:3: status: 'queued' is not final; only success, failed, cancelled, expired are imported, "
        "so an imported order can never be executed.",
        f"{path}:4: status: 'processing' is not final; only success, failed, cancelled, expired are imported, "
        "so an imported order can never be executed.",
        f'{path}:5: side: "long" is not a valid choice.',
        f"{path}:6: amount: Must be at least 0.000000000001.",
        f"{path}:7: symbol: Use ccxt's unified form: BASE/QUOTE for spot (BTC/USDT), "
        "BASE/QUOTE:SETTLE for swaps (BTC/USDT:USDT).",
        f"{path}:8: timestamp: This field is required.",
        f"{path}:9: not a JSON object",
        f"{path}:10: request_id: 1 to 64 letters, digits or _ . : - only.",
        f"{path}:11: client_order_id 'taken1' already belongs to order 'ORD_existing'",
        f"{path}:12: account_id: unknown account 'no such account!', and not a valid account id "
        "(1 to 64 letters, digits or _ . -) to create",
    ]
    assert out.splitlines() == [
        "fields ignored (not part of an order record): note",
        "imported 2, skipped as existing 0, rejected 11",
    ]
    assert str(failure) == "11 line(s) rejected (listed above); the other lines were imported"
    assert sorted(Order.objects.values_list("request_id", flat=True)) == ["ORD_existing", "ok-1", "ok-2"]
    assert snapshot()[0] == before[0]


@pytest.mark.django_db
def test_it_creates_unknown_accounts_disabled_and_out_of_config_and_never_executes(accounts, api, tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl", [seed(account_id="account_retired"), seed(request_id="r2", account_id="account_retired")]
    )

    out, err, failure = run_import(path)

    assert failure is None and err == ""
    assert out.splitlines() == [
        "created 1 unknown account(s) as disabled, out of config: account_retired",
        "imported 2, skipped as existing 0, rejected 0",
    ]
    account = Account.objects.get(pk="account_retired")
    assert (account.enabled, account.in_config) == (False, False)
    assert set(Order.objects.values_list("status", flat=True)) == {"success"}
    refused = api.post(
        "/api/order-scheduler/submit",
        {"account_id": "account_retired", "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market",
         "amount": 0.001},
        format="json",
    )  # fmt: skip
    assert refused.status_code == 400
    assert "account_retired" in refused.json()["errors"]["account_id"][0]
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_it_reads_gzipped_files_with_several_members_like_archived_journals(accounts, tmp_path):
    path = tmp_path / "executions_20260220.jsonl.gz"
    with path.open("wb") as raw:
        raw.write(gzip.compress(b"".join(json.dumps(seed(request_id=f"a{i}")).encode() + b"\n" for i in range(3))))
        raw.write(gzip.compress(json.dumps(seed(request_id="b0", status="failed")).encode() + b"\n"))
    plain = write_jsonl(tmp_path / "executions_20260221.jsonl", [seed(request_id="c0")])

    out, err, failure = run_import(str(path), plain)

    assert failure is None and err == ""
    assert out == "imported 5, skipped as existing 0, rejected 0\n"
    assert sorted(Order.objects.values_list("request_id", flat=True)) == ["a0", "a1", "a2", "b0", "c0"]


@pytest.mark.django_db
def test_it_keeps_the_lines_before_a_truncated_gzip_and_reports_the_rest(accounts, tmp_path):
    whole = gzip.compress(b"".join(json.dumps(seed(request_id=f"t{i}")).encode() + b"\n" for i in range(2000)))
    path = tmp_path / "executions_20260220.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])

    out, err, failure = run_import(str(path))

    imported = Order.objects.count()
    assert 0 < imported < 2000
    assert err.startswith(f"{path}:{imported + 1}: cannot read further: ")
    assert out == f"imported {imported}, skipped as existing 0, rejected 1\n"
    assert failure is not None


@pytest.mark.django_db
def test_it_links_a_retry_that_comes_before_its_original(accounts, tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [seed(request_id="retry", retry_of="original"), seed(request_id="orphan", retry_of="never-seen")],
    )
    later = write_jsonl(tmp_path / "b.jsonl", [seed(request_id="original", status="failed")])

    out, err, failure = run_import(path, later)

    assert failure is None
    assert err == f"{path}:2: retry_of 'never-seen' is not in the history; imported without the link\n"
    assert Order.objects.get(request_id="retry").retry_of.request_id == "original"
    assert Order.objects.get(request_id="orphan").retry_of is None


@pytest.mark.django_db
def test_it_refuses_a_missing_file_before_importing_anything(accounts, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [SEED_LINE])

    out, err, failure = run_import(good, str(tmp_path / "missing.jsonl"))

    assert str(failure) == f"{tmp_path / 'missing.jsonl'}: no such file"
    assert out == "" and err == ""
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_exits_non_zero_with_one_readable_line_from_the_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "import_orders", str(tmp_path / "nope.jsonl")],
        cwd=BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"CommandError: {tmp_path / 'nope.jsonl'}: no such file"]
