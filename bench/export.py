"""Benchmark: `manage.py export_orders` over 1,000,000 orders, peak memory and time.

Fills a separate SQLite file (data/bench_export.sqlite3, through DATABASE_URL) with
orders by raw executemany in one transaction, then runs the export command under
`/usr/bin/time -v` for no rows, the first 100,000 (by --until), all rows, and all rows
by two statuses (a sorted read), and prints the peak resident set size and the elapsed
time of each. Equal peaks show that memory does not grow with the number of rows.

    python bench/export.py [--rows 1000000] [--keep] [--format jsonl|csv|xlsx]
"""

import argparse
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DB_PATH = BASE_DIR / "data" / "bench_export.sqlite3"
OUT_PATH = BASE_DIR / "data" / "bench_export.jsonl"
START = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNTS = ["account_main", "account_poit_main", "account_hedge", "account_spot"]
SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BTC/USDT"]
STRATEGIES = ["bottom_signal_long", "manual", "grid_eth", "trend_follow"]


def env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{DB_PATH}",
        "DJANGO_SETTINGS_MODULE": "scheduler_site.settings",
        "LOG_LEVEL": "WARNING",
    }


def manage(*args: str, timed: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    return subprocess.run(command, cwd=BASE_DIR, env=env(), capture_output=True, text=True, check=True)


def sql_time(moment: datetime) -> str:
    """How Django stores an aware datetime in SQLite: naive UTC text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def rows(count: int):
    for i in range(count):
        created = START + timedelta(seconds=i)
        request_id = f"ORD_{1767225600000 + i * 1000}{i % 4096:03x}"
        failed = i % 10 == 0
        yield (
            request_id,
            "sc" + hashlib.blake2b(request_id.encode(), digest_size=15).hexdigest(),
            "",
            SYMBOLS[i % 4],
            "buy" if i % 2 else "sell",
            "market",
            "0.001" if i % 3 else "1.25",
            "base",
            None,
            None if SYMBOLS[i % 4] == "BTC/USDT" else 10,
            "cash" if SYMBOLS[i % 4] == "BTC/USDT" else "cross",
            0,
            STRATEGIES[i % 4],
            0,
            "failed" if failed else "success",
            None if failed else str(900000000 + i),
            "" if failed else "filled",
            None if failed else "0.001",
            None if failed else "65012.5",
            None if failed else "0.0325",
            "" if failed else "USDT",
            "51008" if failed else "",
            "Insufficient margin (余额不足)" if failed else "",
            1,
            sql_time(created),
            sql_time(created + timedelta(milliseconds=40)),
            sql_time(created + timedelta(milliseconds=250)),
            None,
            ACCOUNTS[i % 4],
            1,  # sent: every one of these orders reached the exchange
        )


def fill(count: int) -> float:
    for path in (DB_PATH, DB_PATH.with_name(DB_PATH.name + "-wal"), DB_PATH.with_name(DB_PATH.name + "-shm")):
        path.unlink(missing_ok=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("sync_accounts")
    started = time.monotonic()
    db = sqlite3.connect(DB_PATH)
    with db:
        db.executemany(
            "INSERT INTO orders_order (request_id, client_order_id, payload_hash, symbol, side, order_type,"
            " amount, amount_unit, price, leverage, margin_mode, reduce_only, strategy_name, priority, status,"
            " order_id, exchange_state, filled_amount, average_price, fee, fee_currency, error_code,"
            " error_message, attempts, created_at, started_at, finished_at, expires_at, account_id, sent)"
            " VALUES (" + ", ".join(["?"] * 30) + ")",
            rows(count),
        )
    db.close()
    return time.monotonic() - started


def timed_export(*args: str, format: str = "jsonl") -> tuple[int, str, str]:
    out = OUT_PATH.with_suffix(f".{format}")
    result = manage("export_orders", "--output", str(out), "--format", format, *args, timed=True)
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", result.stderr).group(1)
    size = f"{out.stat().st_size / 1e6:,.0f} MB"
    if format == "xlsx":
        return peak, elapsed, size
    lines = sum(1 for _ in out.open("rb"))
    return peak, elapsed, f"{lines:,} lines, {size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="rows of the second, smaller export")
    parser.add_argument("--keep", action="store_true", help="keep the database and the export file")
    parser.add_argument("--format", choices=("jsonl", "csv", "xlsx"), default="jsonl", help="export_orders --format")
    options = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        sys.exit("/usr/bin/time is missing: apt-get install time")

    seconds = fill(options.rows)
    print(f"filled {options.rows:,} orders into {DB_PATH.relative_to(BASE_DIR)} in {seconds:.1f} s")
    until = (START + timedelta(seconds=options.small)).isoformat()
    runs = (
        ("0 rows (baseline: Django and the command)", ("--until", START.isoformat())),
        (f"{options.small:,} rows", ("--until", until)),
        (f"{options.rows:,} rows", ()),
        # Two statuses: SQLite cannot read them in (created_at, id) order from one index
        # and sorts the whole result (spilling to disk), still in bounded memory.
        (f"{options.rows:,} rows, --status success,failed", ("--status", "success,failed")),
    )
    for label, args in runs:
        peak, elapsed, produced = timed_export(*args, format=options.format)
        print(f"export {label}: peak RSS {peak / 1024:,.1f} MiB, elapsed {elapsed} ({produced})")
    if not options.keep:
        OUT_PATH.with_suffix(f".{options.format}").unlink(missing_ok=True)
        for path in DB_PATH.parent.glob(DB_PATH.name + "*"):
            path.unlink()


if __name__ == "__main__":
    main()
