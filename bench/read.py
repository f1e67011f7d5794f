"""Read-side benchmark: p50/p95 latency of every GET endpoint at a million orders.

    /work/main/.venv/bin/python bench/read.py [--requests 40] [--refill]

Fills a separate SQLite file (data/bench_read.sqlite3, or DATABASE_URL) with 1,000,000
orders: 50,000 a day for 20 days ending now (so 50,000 today and 50,000 yesterday in the
configured TIME_ZONE), 4 accounts, 10 strategies, 20 symbols, mixed statuses, realistic
queue waits and execution times, and some orders sharing one created_at. The rows go in
with raw executemany inside one transaction with the indexes dropped, then the indexes
are rebuilt from the schema the migrations made. A file that already holds today's rows
is reused, so iterating is quick.

Then it starts a real gunicorn server (the same worker class as `manage.py serve`, one
process) on a free loopback port and times each request from a keep-alive http.client
connection: send, read the whole body, check 200. Requests are sequential, so the
figures are single-request latency through the whole HTTP stack.
"""

import argparse
import hashlib
import http.client
import json
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'data' / 'bench_read.sqlite3'}")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from orders.selectors import day_bounds  # noqa: E402

STRATEGIES = ["manual", "bottom_signal_long", "top_signal_short", "grid_btc", "grid_eth", "dca_weekly",
              "breakout_1h", "mean_revert_5m", "funding_arb", "hedge_rebalance"]  # fmt: skip
SYMBOLS = [f"{c}/USDT:USDT" for c in ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC")] + [
    f"{c}/USDT" for c in ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC")
]
ERRORS = [
    ("51008", "Order failed. Insufficient USDT margin in account"),
    ("51020", "Your order should meet or exceed the minimum order amount."),
    ("rate_limit", "Too Many Requests (gave up after 6 attempts; never reached the exchange)"),
    ("auth", "Invalid OK-ACCESS-KEY"),
]
DAYS = 20


def db_path() -> Path:
    settings_dict = connection.settings_dict
    if not settings_dict["ENGINE"].endswith("sqlite3"):
        sys.exit("bench/read.py fills a SQLite file: set DATABASE_URL=sqlite:///...")
    return Path(settings_dict["NAME"])


def prepare_schema() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    from orders.services.accounts import sync_accounts

    sync_accounts(path=BASE_DIR / "config" / "okx_accounts.json")


def day_windows(total: int, per_day: int) -> list[tuple[datetime, datetime, int]]:
    """(start, end, count) per day, oldest first, in UTC; today ends now."""
    today = timezone.localdate()
    now = timezone.now()
    days = math.ceil(total / per_day)
    windows = []
    for back in range(days - 1, -1, -1):
        start, end = day_bounds(today - timedelta(days=back))
        count = per_day if back < days - 1 else total - per_day * (days - 1)
        windows.append((start, min(end, now), count))
    return windows


def fmt(moment: datetime | None) -> str | None:
    # Django's SQLite representation of an aware datetime: naive UTC, space separator.
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def generate(rng: random.Random, *, start: datetime, end: datetime, count: int, first_id: int, newest: bool):
    span = (end - start).total_seconds()
    offsets = sorted(rng.random() * span for _ in range(count))
    accounts = ["account_main", "account_poit_main", "account_hedge", "account_spot"]
    rows = []
    for n, offset in enumerate(offsets):
        pk = first_id + n
        # One order in twenty shares the previous order's timestamp (a batch submit).
        if n and rng.random() < 0.05:
            offset = offsets[n - 1]
            offsets[n] = offset
        created = start + timedelta(seconds=offset)
        from_end = count - n
        if newest and from_end <= 200:
            status = "queued"
        elif newest and from_end <= 204:
            status = "processing"
        elif newest and from_end <= 205:
            status = "unknown"
        else:
            roll = rng.random()
            status = (
                "success" if roll < 0.90 else "failed" if roll < 0.96 else "cancelled" if roll < 0.985 else "expired"
            )
        account = accounts[rng.choices(range(4), weights=(4, 3, 2, 1))[0]]
        symbol = rng.choice(SYMBOLS if account != "account_spot" else SYMBOLS[10:])
        order_type = "limit" if rng.random() < 0.2 else "market"
        amount = round(rng.uniform(0.001, 2.0), 3)
        price = round(rng.uniform(1, 70000), 2) if order_type == "limit" else None
        started = finished = expires = order_id = filled = avg = fee = None
        state = fee_currency = error_code = error_message = ""
        attempts = 0
        wait = min(60.0, rng.lognormvariate(math.log(0.04), 1.0))
        run = min(30.0, rng.lognormvariate(math.log(0.18), 0.6))
        if status in ("success", "failed", "processing", "unknown"):
            started = created + timedelta(seconds=wait)
            attempts = 1
        if status in ("success", "failed"):
            finished = started + timedelta(seconds=run)
        if status == "success":
            order_id = str(600000000000000000 + pk)
            state, filled, avg = "filled", amount, price or round(rng.uniform(1, 70000), 2)
            fee, fee_currency = round(amount * avg * 0.0005, 6), "USDT"
        elif status == "failed":
            error_code, error_message = rng.choice(ERRORS)
        elif status == "expired":
            expires = created + timedelta(seconds=300)
            finished = expires
            error_code, error_message = "expired", "Not started before its expiry time; never sent to the exchange."
        elif status == "cancelled":
            finished = created + timedelta(seconds=rng.uniform(1, 60))
            error_code, error_message = "cancelled", "Cancelled by an operator."
        request_id = f"ORD_{int(created.timestamp() * 1000)}{pk:06x}"
        rows.append(
            {
                "id": pk,
                "request_id": request_id,
                "client_order_id": "sc" + hashlib.blake2b(request_id.encode(), digest_size=15).hexdigest(),
                "idempotency_key": None,
                "payload_hash": "",
                "account_id": account,
                "symbol": symbol,
                "side": "buy" if rng.random() < 0.5 else "sell",
                "order_type": order_type,
                "amount": amount,
                "amount_unit": "base",
                "price": price,
                "leverage": None if "/USDT:" not in symbol else rng.choice((1, 3, 5, 10, 20)),
                "margin_mode": "cross" if ":" in symbol else "",
                "reduce_only": 0,
                "strategy_name": STRATEGIES[min(9, int(rng.expovariate(0.35)))],
                "priority": 0,
                "status": status,
                "order_id": order_id,
                "exchange_state": state,
                "filled_amount": filled,
                "average_price": avg,
                "fee": fee,
                "fee_currency": fee_currency,
                "error_code": error_code,
                "error_message": error_message,
                "attempts": attempts,
                "created_at": fmt(created),
                "started_at": fmt(started),
                "finished_at": fmt(finished),
                "expires_at": fmt(expires),
                "cancel_requested_at": None,
                "exchange_checked_at": None,
                "retry_of_id": None,
                "created_by_id": None,
            }
        )
    return rows


def fill(path: Path, *, total: int, per_day: int) -> None:
    windows = day_windows(total, per_day)
    connection.close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA synchronous=OFF")
    columns = [row[1] for row in raw.execute("PRAGMA table_info(orders_order)")]
    indexes = raw.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='orders_order' AND sql IS NOT NULL"
    ).fetchall()
    insert = f"INSERT INTO orders_order ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    rng = random.Random(20260221)
    started = time.monotonic()
    raw.execute("BEGIN")
    for name, _ in indexes:
        raw.execute(f'DROP INDEX "{name}"')
    raw.execute("DELETE FROM orders_order")
    first_id = 1
    for number, (start, end, count) in enumerate(windows):
        rows = generate(rng, start=start, end=end, count=count, first_id=first_id, newest=number == len(windows) - 1)
        raw.executemany(insert, [tuple(row[c] for c in columns) for row in rows])
        first_id += count
        print(f"  day {number + 1}/{len(windows)}: {first_id - 1:,} rows ({time.monotonic() - started:.0f} s)")
    for _, sql in indexes:
        raw.execute(sql)
    raw.execute("COMMIT")
    raw.close()
    print(f"filled {total:,} orders in {time.monotonic() - started:.0f} s")


def ensure_filled(*, total: int, per_day: int, refill: bool) -> None:
    path = db_path()
    prepare_schema()
    from orders.models import Order

    start, end = day_bounds(timezone.localdate())
    have = Order.objects.count()
    today = Order.objects.filter(created_at__gte=start, created_at__lt=end).count()
    if not refill and have == total and today == min(total, per_day):
        print(f"reusing {path} ({have:,} orders, {today:,} today)")
        return
    print(f"filling {path} with {total:,} orders ({per_day:,} a day) ...")
    fill(path, total=total, per_day=per_day)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    # A superuser: every role and every account, as the endpoints' widest caller.
    user, _ = get_user_model().objects.update_or_create(username="bench", defaults={"is_superuser": True})
    return Token.objects.get_or_create(user=user)[0].key


def start_server(port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", "scheduler_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--worker-class", "gthread", "--threads", "4", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=BASE_DIR, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit("gunicorn did not answer /healthz within 30 s")


def cases() -> list[tuple]:
    """(name, path[, expected HTTP status])."""
    from orders.models import Order
    from orders.selectors import encode_cursor

    today = timezone.localdate()
    total = Order.objects.count()
    some = Order.objects.filter(status="success").order_by("-id").values("request_id", "order_id")[total // 200]
    deep = Order.objects.order_by("-created_at", "-id").values("created_at", "id")[total * 9 // 10]
    orders = "/api/order-scheduler/orders"
    stats = "/api/order-scheduler/stats"
    return [
        ("status", "/api/order-scheduler/status"),
        ("orders limit=100", f"{orders}?limit=100"),
        ("orders account", f"{orders}?limit=100&account=account_spot"),
        ("orders status=failed", f"{orders}?limit=100&status=failed"),
        ("orders status=queued,unknown", f"{orders}?limit=100&status=queued,unknown"),
        ("orders status=success,failed", f"{orders}?limit=100&status=success,failed"),
        ("orders strategy", f"{orders}?limit=100&strategy=hedge_rebalance"),
        ("orders symbol", f"{orders}?limit=100&symbol=LTC/USDT"),
        ("orders side=sell", f"{orders}?limit=100&side=sell"),
        ("orders order_type=limit", f"{orders}?limit=100&order_type=limit"),
        ("orders since/until (yesterday)", f"{orders}?limit=100&" + urlencode({"since": today - timedelta(days=1), "until": today})),
        ("orders q=request_id", f"{orders}?limit=100&q={some['request_id']}"),
        ("orders q=order_id prefix", f"{orders}?limit=100&q={some['order_id'][:-2]}"),
        ("orders q=too broad ORD_ (400)", f"{orders}?limit=100&q=ORD_", 400),
        ("orders account+status=failed", f"{orders}?limit=100&account=account_hedge&status=failed"),
        ("orders account+status=unknown,expired", f"{orders}?limit=100&account=account_main&status=unknown,expired"),
        ("orders strategy+status=unknown", f"{orders}?limit=100&strategy=manual&status=unknown"),
        ("orders cursor 90% deep", f"{orders}?" + urlencode({"limit": 100, "cursor": encode_cursor(deep["created_at"], deep["id"])})),
        ("order detail", f"{orders}/{some['request_id']}"),
        ("stats", stats),
        # The largest account (40% of the orders) and strategy (30%): the dearest filters.
        ("stats account", f"{stats}?account=account_main"),
        ("stats strategy", f"{stats}?strategy=manual"),
        ("stats account+strategy", f"{stats}?account=account_main&strategy=manual"),
    ]  # fmt: skip


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def measure(port: int, token: str, *, requests: int) -> list[tuple[str, float, float, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    results = []
    for name, path, *expected in cases():
        timings = []
        for n in range(requests + 3):  # the first three warm the caches
            began = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - began) * 1000
            if response.status != (expected[0] if expected else 200):
                sys.exit(f"{name}: HTTP {response.status}: {body[:300]!r}")
            if n >= 3:
                timings.append(elapsed)
        results.append((name, percentile(timings, 50), percentile(timings, 95), len(body)))
        json.loads(body)
    conn.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--refill", action="store_true", help="refill even if the file already has the rows")
    args = parser.parse_args()

    ensure_filled(total=args.orders, per_day=args.per_day, refill=args.refill)
    token = bench_token()
    connection.close()
    port = free_port()
    server = start_server(port)
    try:
        results = measure(port, token, requests=args.requests)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n{args.orders:,} orders, TIME_ZONE={settings.TIME_ZONE}, {args.requests} requests each, gunicorn gthread")
    print(f"{'endpoint':40} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>8}")
    for name, p50, p95, size in results:
        print(f"{name:40} {p50:8.1f} {p95:8.1f} {size:8,}")


if __name__ == "__main__":
    main()
