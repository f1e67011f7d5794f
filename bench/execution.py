"""Execution benchmarks against the local OKX fake, through a running `manage.py serve`
(gunicorn + django-q2 cluster + supervisor), on SQLite + ORM broker or PostgreSQL + Redis.

    .venv/bin/python bench/execution.py --backend sqlite|postgres

dispatch  orders submitted one at a time through the HTTP API (each waits for the one
          before to finish): from the order's created_at (stamped by submit just before
          its INSERT commits, so "accepted") to its request arriving at the fake OKX
          (FakeOKX.order_requests ts). No injected latency.
throughput  N accounts x M queued orders, 50 ms injected on every order placement
          (POST trade/batch-orders: the fake sleeps 50 ms after reading the request and
          before answering). Orders are queued in-process by the submit service while the
          bench holds the accounts' leases, then the leases are released and the accounts
          woken: from that moment to the last order's finished_at (database timestamps).
          Ideal = min(N, Q_WORKERS) / 50 ms. Checks every run: all orders succeeded, each
          reached the fake exactly once, and no API key ever had two order requests in
          flight (FakeOKX.max_concurrent_orders == 1).
memory    VmRSS of each process of the service (from /proc, over its process tree) at rest
          and the peak while the throughput runs, plus the total PSS (shared pages split).

A fresh database per run: a SQLite file in a temporary directory, or a database created
(and dropped) on --postgres-url with Redis on --redis-url under a unique cluster name.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Service, bench_env, percentile, prepare_database  # noqa: E402
from tests.fakes.okx import FakeOKX  # noqa: E402

LATENCY = 0.05
SYMBOL = "BTC/USDT:USDT"
HOLD_OWNER = "bench-hold"


def account_ids(count: int) -> list[str]:
    return [f"bench_{n:02d}" for n in range(1, count + 1)]


def creds(account_id: str) -> tuple[str, str, str]:
    return f"key-{account_id}", f"secret-{account_id}", f"pass-{account_id}"


def env_names(account_id: str) -> tuple[str, str, str]:
    upper = account_id.upper()
    return f"{upper}_API_KEY", f"{upper}_SECRET", f"{upper}_PASSPHRASE"


# --- back ends ----------------------------------------------------------------------------


class Backend:
    """A fresh database (and, for postgres, a unique Redis queue) for one bench run."""

    def __init__(self, kind: str, workdir: Path, *, postgres_url: str, redis_url: str):
        self.kind = kind
        self.postgres_url = postgres_url.rstrip("/")
        self.env: dict[str, str] = {}
        self.db_name = ""
        if kind == "sqlite":
            self.env["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
        else:
            import psycopg

            self.db_name = f"bench_exec_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(f"{self.postgres_url}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            self.env["DATABASE_URL"] = f"{self.postgres_url}/{self.db_name}"
            self.env["REDIS_URL"] = redis_url
        self.env["Q_CLUSTER_NAME"] = f"bench{os.getpid()}"

    def drop(self) -> None:
        if not self.db_name:
            return
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{self.postgres_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def versions(backend: Backend) -> str:
    import sqlite3

    import django
    import django_q  # noqa: F401

    parts = [f"python {sys.version.split()[0]}", f"django {django.get_version()}"]
    if backend.kind == "sqlite":
        parts.append(f"sqlite {sqlite3.sqlite_version}")
    else:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            parts.append(f"postgresql {cursor.fetchone()[0]}")
        import redis

        info = redis.Redis.from_url(backend.env["REDIS_URL"]).info("server")
        parts.append(f"redis {info['redis_version']}")
    return ", ".join(parts)


# --- the service --------------------------------------------------------------------------


# --- memory -------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def service_roles(serve_pid: int) -> dict[int, str]:
    """Each process of the service by role: the process tree under `serve`, with the
    django-q2 roles (sentinel, pusher, monitor, workers) from the cluster's own status."""
    from django_q.status import Stat

    children = _children_map()
    roles = {serve_pid: "serve supervisor"}
    stats = {s.pid: s for s in Stat.get_all()}
    for pid in children.get(serve_pid, []):
        command = _cmdline(pid)
        if "gunicorn" in command:
            roles[pid] = "gunicorn master"
            for worker in children.get(pid, []):
                roles[worker] = "gunicorn worker"
        elif "qcluster" in command:
            roles[pid] = "qcluster main"
            stat = stats.get(pid)
            for sentinel in children.get(pid, []):
                roles[sentinel] = "qcluster sentinel"
                for child in children.get(sentinel, []):
                    if stat and child == stat.pusher:
                        roles[child] = "qcluster pusher"
                    elif stat and child == stat.monitor:
                        roles[child] = "qcluster monitor"
                    elif stat and child in stat.workers:
                        roles[child] = "qcluster worker"
                    else:
                        roles[child] = "qcluster other"
    return roles


ROLE_ORDER = ["serve supervisor", "gunicorn master", "gunicorn worker", "qcluster main", "qcluster sentinel",
              "qcluster monitor", "qcluster pusher", "qcluster worker", "qcluster other"]  # fmt: skip


class MemorySampler:
    """VmRSS of every service process every 0.2 s while running; keeps the peak per pid."""

    def __init__(self, serve_pid: int):
        self.serve_pid = serve_pid
        self.roles: dict[int, str] = {}
        self.peak: dict[int, int] = {}
        self.peak_total_pss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> tuple[dict[int, str], dict[int, int], int]:
        roles = service_roles(self.serve_pid)
        rss = {pid: kb for pid in roles if (kb := _status_kb(pid, "VmRSS")) is not None}
        pss = sum(kb for pid in roles if (kb := _pss_kb(pid)) is not None)
        return roles, rss, pss

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            if tick % 25 == 0 or not self.roles:
                self.roles.update(service_roles(self.serve_pid))
            for pid in self.roles:
                kb = _status_kb(pid, "VmRSS")
                if kb is not None and kb > self.peak.get(pid, 0):
                    self.peak[pid] = kb
            if tick % 5 == 0:
                self.peak_total_pss = max(self.peak_total_pss, sum(_pss_kb(p) or 0 for p in self.roles))
            tick += 1
            self._stop.wait(0.2)


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # total, idle + iowait


class CpuMeter:
    """CPU time spent during a run, by role: the service's processes, this process
    (the fake OKX and the bench itself), the database and broker servers."""

    def __init__(self, serve_pid: int):
        self.serve_pid = serve_pid

    def _sample(self) -> dict[int, tuple[str, int]]:
        roles = {pid: role.split()[-1] if role.startswith("qcluster worker") else role
                 for pid, role in service_roles(self.serve_pid).items()}  # fmt: skip
        roles[os.getpid()] = "bench + fake OKX"
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in roles:
                comm = _comm(int(entry))
                if comm in ("postgres", "redis-server"):
                    roles[int(entry)] = comm
        return {pid: (role, _cpu_ticks(pid)) for pid, role in roles.items()}

    def start(self) -> None:
        self.before = self._sample()
        self.machine_before = _machine_ticks()
        self.wall_before = time.monotonic()

    def stop(self) -> dict:
        after = self._sample()
        total, idle = (a - b for a, b in zip(_machine_ticks(), self.machine_before, strict=True))
        ticks = os.sysconf("SC_CLK_TCK")
        by_role: dict[str, float] = {}
        for pid, (role, value) in after.items():
            used = value - self.before.get(pid, (role, 0))[1]
            by_role[_cpu_group(role)] = by_role.get(_cpu_group(role), 0.0) + used / ticks
        # Whatever else ran meanwhile (other users of a shared machine, the kernel).
        by_role["other processes"] = max(0.0, (total - idle) / ticks - sum(by_role.values()))
        by_role["machine busy %"] = 100.0 * (total - idle) / total if total else 0.0
        return by_role


def idle_cpu(service: Service, seconds: float = 5.0) -> float:
    """CPU the service's own processes use while nothing happens (polling, heartbeats)."""
    pids = list(service_roles(service.proc.pid))
    before = sum(_cpu_ticks(pid) for pid in pids)
    time.sleep(seconds)
    return 100.0 * (sum(_cpu_ticks(pid) for pid in pids) - before) / os.sysconf("SC_CLK_TCK") / seconds


def _cpu_group(role: str) -> str:
    if role == "worker":
        return "q workers"
    if role.startswith("qcluster") or role == "serve supervisor":
        return "q other+serve"
    if role.startswith("gunicorn"):
        return "web"
    return role


def memory_summary(rest, sampler: MemorySampler) -> dict:
    workers = [kb for pid, kb in sampler.peak.items() if sampler.roles.get(pid) == "qcluster worker"]
    return {
        "pss_rest": rest[2] / 1024,
        "pss_peak": sampler.peak_total_pss / 1024,
        "worker_rss": statistics.median(workers) / 1024 if workers else 0.0,
    }


def memory_table(rest_roles, rest_rss, rest_pss, sampler: MemorySampler) -> list[str]:
    by_role: dict[str, dict] = {}
    for pid, role in rest_roles.items():
        by_role.setdefault(role, {"rest": [], "peak": []})["rest"].append(rest_rss.get(pid, 0))
    for pid, kb in sampler.peak.items():
        by_role.setdefault(sampler.roles[pid], {"rest": [], "peak": []})["peak"].append(kb)
    lines = [f"  {'process':20s} {'count':>5s} {'rest MiB each':>14s} {'peak MiB each':>14s} {'peak MiB sum':>13s}"]
    total_rest = total_peak = 0
    for role in ROLE_ORDER:
        if role not in by_role:
            continue
        rest, peak = by_role[role]["rest"], by_role[role]["peak"]
        total_rest += sum(rest)
        total_peak += sum(peak)
        each_rest = f"{min(rest) / 1024:.0f}-{max(rest) / 1024:.0f}" if rest else "-"
        each_peak = f"{min(peak) / 1024:.0f}-{max(peak) / 1024:.0f}" if peak else "-"
        lines.append(f"  {role:20s} {len(rest):5d} {each_rest:>14s} {each_peak:>14s} {sum(peak) / 1024:13.0f}")
    lines.append(f"  {'all (sum of RSS)':20s} {'':5s} {total_rest / 1024:14.0f} {'':>14s} {total_peak / 1024:13.0f}")
    lines.append(
        f"  {'all (sum of PSS)':20s} {'':5s} {rest_pss / 1024:14.0f} {'':>14s} {sampler.peak_total_pss / 1024:13.0f}"
    )
    return lines


# --- helpers over the database ------------------------------------------------------------


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def finished_count(pks: list[int]) -> int:
    from orders.models import Order, OrderStatus

    return Order.objects.filter(pk__in=pks, status__in=OrderStatus.final()).count()


def hold_accounts(accounts: list[str]) -> None:
    """Take the accounts' leases for the bench, so queued orders wait for the start."""
    from datetime import timedelta

    from django.db.models import Q
    from django.db.models.functions import Now

    from orders.models import Account

    for account_id in accounts:
        wait_until(
            lambda account_id=account_id: (
                Account.objects.filter(pk=account_id)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=Now()))
                .update(lease_owner=HOLD_OWNER, lease_until=Now() + timedelta(hours=1))
            ),
            timeout=60,
            what=f"the lease of {account_id}",
        )


def release_and_wake(accounts: list[str]) -> None:
    from orders.models import Account
    from orders.services.drain import wake_account

    Account.objects.filter(pk__in=accounts, lease_owner=HOLD_OWNER).update(lease_owner="", lease_until=None)
    for account_id in accounts:
        wake_account(account_id)  # outside a transaction: enqueued at once


def queue_orders(accounts: list[str], per_account: int) -> list[int]:
    from orders.services.submit import order_submit

    items = [
        {"account_id": a, "symbol": SYMBOL, "side": "buy" if n % 2 else "sell", "order_type": "market",
         "amount": Decimal("0.001"), "leverage": 10, "strategy_name": "bench"}
        for n in range(per_account) for a in accounts
    ]  # fmt: skip
    return [order.pk for order in order_submit(items=items, batch=True).orders]


def cold_starts(fake: FakeOKX) -> int:
    """Drainers that ran an account for the first time in their process: each loads the
    account's markets and sets its leverage once (ccxt spaces these requests 110 ms
    apart: about 0.23 s), so a set-leverage request marks one."""
    return fake.leverage_calls


# --- dispatch -----------------------------------------------------------------------------


def dispatch(fake: FakeOKX, service: Service, token: str, *, orders: int, warmup: int) -> dict:
    """Orders one at a time through the HTTP API on one account; each is sent a random
    0-50 ms after the previous one finished. Returns latencies (s) created_at -> arrival
    at the fake, created_at -> claim, and the HTTP round trips."""
    from orders.models import Order, OrderStatus

    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    body = {"account_id": "bench_01", "symbol": SYMBOL, "side": "buy", "order_type": "market", "amount": 0.001,
            "leverage": 10, "strategy_name": "dispatch"}  # fmt: skip
    measured, http_times = [], []
    cold_before = 0
    pause = random.Random(7)
    for n in range(warmup + orders):
        # A random pause first: arrivals unrelated to the ORM broker's poll cycle.
        time.sleep(pause.uniform(0, 0.05))
        if n == warmup:
            fake.reset_stats()
            cold_before = cold_starts(fake)
        started = time.perf_counter()
        conn.request("POST", "/api/order-scheduler/submit", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 201:
            raise SystemExit(f"submit answered {response.status}: {payload}")
        if n >= warmup:
            http_times.append(time.perf_counter() - started)
        request_id = payload["request_id"]
        wait_until(
            lambda request_id=request_id: Order.objects.filter(
                request_id=request_id, status__in=OrderStatus.final()
            ).exists(),
            timeout=30, what=f"order {request_id} to finish", interval=0.005,
        )  # fmt: skip
        if n >= warmup:
            measured.append(request_id)
    conn.close()
    arrivals = {}
    for entry in fake.order_requests:
        for item in entry["orders"]:
            arrivals.setdefault(item.get("clOrdId"), entry["ts"])
    latencies, to_claim = [], []
    for order in Order.objects.filter(request_id__in=measured):
        if order.status != OrderStatus.SUCCESS:
            raise SystemExit(f"dispatch order {order.request_id} ended {order.status}: {order.error_message}")
        latencies.append(arrivals[order.client_order_id] - order.created_at.timestamp())
        to_claim.append((order.started_at - order.created_at).total_seconds())
    if os.environ.get("BENCH_DEBUG"):
        worst = sorted(zip(latencies, to_claim, strict=True), reverse=True)[:8]
        print("worst (total, to claim) ms:", [(round(a * 1000), round(b * 1000)) for a, b in worst])
    return {"latencies": latencies, "to_claim": to_claim, "http": http_times, "cold": cold_starts(fake) - cold_before}


# --- throughput ---------------------------------------------------------------------------


def throughput_run(fake: FakeOKX, accounts: list[str], per_account: int, meter: CpuMeter | None = None) -> dict:
    from django.db.models import Max
    from django.utils import timezone

    from orders.models import Order, OrderStatus

    hold_accounts(accounts)
    pks = queue_orders(accounts, per_account)
    fake.reset_stats()
    cold_before = cold_starts(fake)
    if meter:
        meter.start()
    woke = timezone.now()
    release_and_wake(accounts)
    # Polled gently: the figure comes from the database's timestamps, not from this loop.
    wait_until(lambda: finished_count(pks) == len(pks), timeout=600, what=f"{len(pks)} orders", interval=0.1)
    orders = Order.objects.filter(pk__in=pks)
    last = orders.aggregate(last=Max("finished_at"))["last"]
    statuses = set(orders.values_list("status", flat=True))
    if statuses != {OrderStatus.SUCCESS}:
        raise SystemExit(f"orders ended {statuses}, expected only success")
    requests = fake.order_requests
    ids = [item.get("clOrdId") for entry in requests for item in entry["orders"]]
    wanted = set(orders.values_list("client_order_id", flat=True))
    arrived_once = len(ids) == len(set(ids)) and wanted <= set(ids)
    keys = {creds(a)[0] for a in accounts}
    concurrency = {k: n for k, n in fake.max_concurrent_orders.items() if k in keys}
    # Fill details arrive from the tracker, beside the drainers: the next run starts once
    # they are in, so that it does not share the workers with this run's tracking.
    wait_until(
        lambda: not orders.filter(exchange_state="submitted").exists(), timeout=120, what="fill details", interval=0.1
    )
    settled = (timezone.now() - last).total_seconds()
    cpu = meter.stop() if meter else {}  # the orders' fill tracking included
    # Let the drainers release their leases before the next run holds them again.
    from orders.models import Account

    wait_until(
        lambda: not Account.objects.filter(pk__in=accounts).exclude(lease_owner="").exists(),
        timeout=60, what="the drainers to release the leases",
    )  # fmt: skip
    return {
        "rate": len(pks) / (last - woke).total_seconds(),
        "seconds": (last - woke).total_seconds(),
        "max_in_flight": max(concurrency.values()) if concurrency else 0,
        "one_at_a_time": set(concurrency.values()) == {1} and len(concurrency) == len(accounts),
        "exactly_once": arrived_once,
        "cold": cold_starts(fake) - cold_before,
        "per_request": len(ids) / max(1, len(requests)),
        "settled": settled,
        "cpu": {k: (v if k.endswith("%") else v * 1000 / len(pks)) for k, v in cpu.items()},
    }


def warm_up(fake: FakeOKX, accounts: list[str], *, rounds: int, quiet: int = 5) -> int:
    """Rounds of one order per account, all woken at once, until `quiet` rounds in a row
    had no cold start (the workers that happen to take these accounts have warm
    clients), or `rounds`. Returns the rounds run."""
    calm = 0
    for n in range(rounds):
        calm = calm + 1 if throughput_run(fake, accounts, 1)["cold"] == 0 else 0
        if calm >= quiet:
            return n + 1
    return rounds


def throughput_table(fake, meter, counts, workers, per_account, rounds, warmup_rounds, label) -> list[dict]:
    rows = []
    print(f"\nthroughput, Q_WORKERS={workers}, {LATENCY * 1000:.0f} ms on POST trade/batch-orders, "
          f"{per_account} orders per account, median of {rounds} runs{label}")  # fmt: skip
    print(f"  {'accounts':>8s} {'ideal/s':>8s} {'orders/s':>9s} {'ratio':>6s} {'runs orders/s':>22s} "
          f"{'cold':>5s} {'max in flight':>13s} {'once':>5s} {'warm-up':>7s} {'fills +s':>8s} {'orders/req':>10s}")  # fmt: skip
    for count in counts:
        accounts = account_ids(count)
        warmed = warm_up(fake, accounts, rounds=warmup_rounds)
        runs = [throughput_run(fake, accounts, per_account, meter) for _ in range(rounds)]
        ideal = min(count, workers) / LATENCY
        rate = statistics.median(r["rate"] for r in runs)
        row = {
            "accounts": count, "workers": workers, "ideal": ideal, "rate": rate, "ratio": rate / ideal,
            "runs": [r["rate"] for r in runs], "cold": sum(r["cold"] for r in runs),
            "settled": statistics.median(r["settled"] for r in runs),
            "max_in_flight": max(r["max_in_flight"] for r in runs),
            "per_request": statistics.median(r["per_request"] for r in runs),
            "ok": all(r["one_at_a_time"] and r["exactly_once"] for r in runs),
        }  # fmt: skip
        rows.append(row)
        runs_text = " ".join(f"{r:.0f}" for r in row["runs"])
        print(f"  {count:8d} {ideal:8.0f} {rate:9.1f} {row['ratio']:6.2f} {runs_text:>22s} {row['cold']:5d} "
              f"{row['max_in_flight']:13d} {'yes' if row['ok'] else 'NO':>5s} {warmed:7d} {row['settled']:8.1f} "
              f"{row['per_request']:10.1f}", flush=True)  # fmt: skip
        cpu = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]["cpu"]
        print("           CPU ms per order: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if not k.endswith("%")
        ) + f"; machine busy {cpu['machine busy %']:.0f} %")  # fmt: skip
        if not row["ok"]:
            raise SystemExit("an account had two order requests in flight, or an order reached the fake twice")
    return rows


# --- main ---------------------------------------------------------------------------------


def parse_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--workers", type=int, default=18, help="Q_WORKERS of the main run (default: 16 accounts + 2)")
    parser.add_argument("--dispatch-orders", type=int, default=200)
    parser.add_argument("--dispatch-warmup", type=int, default=40)
    parser.add_argument("--accounts", default="1,2,4,8,16", help="account counts of the throughput table")
    parser.add_argument("--orders-per-account", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per point (median printed)")
    parser.add_argument("--warmup-rounds", type=int, default=80, help="at most, per point")
    parser.add_argument("--sweep-workers", default="4,8,16", help="extra Q_WORKERS values run at the largest count")
    parser.add_argument("--batch-size", type=int, help="ORDER_SCHEDULER_BATCH_SIZE (1: one order per request)")
    parser.add_argument("--skip-dispatch", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    counts = parse_counts(args.accounts)
    sweep = [w for w in parse_counts(args.sweep_workers) if w != args.workers]

    workdir = Path(tempfile.mkdtemp(prefix="bench-execution-"))
    fake = FakeOKX(accounts={creds(a)[0]: creds(a)[1:] for a in account_ids(max(counts))}, demo=True).start()
    accounts_file = workdir / "accounts.json"
    entries, secrets = [], {}
    for account_id in account_ids(max(counts)):
        names = env_names(account_id)
        secrets.update(zip(names, creds(account_id), strict=True))
        entries.append({"id": account_id, "mode": "demo", "base_url": fake.base_url, "api_key_env": names[0],
                        "secret_env": names[1], "passphrase_env": names[2], "default_leverage": 10,
                        "options": {}})  # fmt: skip
    accounts_file.write_text(json.dumps({"accounts": entries}))

    backend = Backend(args.backend, workdir, postgres_url=args.postgres_url, redis_url=args.redis_url)
    env = bench_env(
        workdir / "bench.sqlite3", **backend.env, **secrets,
        ORDER_SCHEDULER_ACCOUNTS_FILE=accounts_file, SECRET_KEY="bench-" + uuid.uuid4().hex * 2,
    )  # fmt: skip
    if args.batch_size:
        env["ORDER_SCHEDULER_BATCH_SIZE"] = str(args.batch_size)
    os.environ.update(env)
    import django

    django.setup()
    services: list[Service] = []
    try:
        token = prepare_database(env)
        print(f"backend: {args.backend} ({versions(backend)}); {os.cpu_count()} CPUs; "
              f"serve = gunicorn {os.environ.get('WEB_CONCURRENCY', 2)} workers + django-q2 cluster")  # fmt: skip

        service = Service(env, workers=args.workers, log_path=workdir / "serve.log")
        services.append(service)
        sampler = MemorySampler(service.proc.pid)
        from django.conf import settings

        broker = "Redis" if backend.kind == "postgres" else f"ORM, Q_POLL={settings.Q_CLUSTER['poll']:g}"
        print(f"\nidle service CPU (5 s, nothing queued): {idle_cpu(service):.1f} % of one core ({broker})")
        if not args.skip_dispatch:
            result = dispatch(fake, service, token, orders=args.dispatch_orders, warmup=args.dispatch_warmup)
            lat, web = result["latencies"], result["http"]
            print(f"\ndispatch, {len(lat)} orders one at a time through POST /api/order-scheduler/submit "
                  f"(after {args.dispatch_warmup} warm-up orders), Q_WORKERS={args.workers}")  # fmt: skip
            print("  created_at (submit accepted) -> order request at the fake OKX:")
            print(f"    p50 {percentile(lat, 50) * 1000:6.1f} ms   p95 {percentile(lat, 95) * 1000:6.1f} ms   "
                  f"p99 {percentile(lat, 99) * 1000:6.1f} ms   max {max(lat) * 1000:6.1f} ms   "
                  f"cold starts in window: {result['cold']}")  # fmt: skip
            claim = result["to_claim"]
            print(
                f"  of which created_at -> claimed by a worker (started_at): p50 {percentile(claim, 50) * 1000:.1f} ms, "
                f"p99 {percentile(claim, 99) * 1000:.1f} ms; the rest is the exchange call up to the request's arrival"
            )
            print(f"  HTTP submit round trip: p50 {percentile(web, 50) * 1000:.1f} ms, "
                  f"p99 {percentile(web, 99) * 1000:.1f} ms")  # fmt: skip

        if args.skip_throughput:
            return
        fake.inject("latency", path_suffix="trade/batch-orders", seconds=LATENCY)
        rest = sampler.snapshot()
        sampler.start()
        rows = throughput_table(fake, CpuMeter(service.proc.pid), counts, args.workers, args.orders_per_account, args.rounds,
                                args.warmup_rounds, "")  # fmt: skip
        sampler.stop()
        print(f"\nmemory, Q_WORKERS={args.workers}: at rest (after start-up and dispatch) and peak during throughput")
        print("\n".join(memory_table(*rest, sampler)))
        service.stop()
        memory = {args.workers: memory_summary(rest, sampler)}

        sweep_rows = [r for r in rows if r["accounts"] == max(counts)]
        for workers in sweep:
            service = Service(env, workers=workers, log_path=workdir / f"serve-{workers}.log")
            services.append(service)
            sampler = MemorySampler(service.proc.pid)
            rest = sampler.snapshot()
            sampler.start()
            sweep_rows += throughput_table(fake, CpuMeter(service.proc.pid), [max(counts)], workers, args.orders_per_account, args.rounds,
                                           args.warmup_rounds, " (worker sweep)")  # fmt: skip
            sampler.stop()
            print(f"  memory, Q_WORKERS={workers}:")
            print("\n".join(memory_table(*rest, sampler)))
            service.stop()
            memory[workers] = memory_summary(rest, sampler)
        if len(sweep_rows) > 1:
            print(f"\nworker sweep at {max(counts)} accounts: median orders/s, ratio to min(accounts, Q_WORKERS)/50 ms, "
                  "and the whole service's memory (sum of PSS) at rest and at peak")  # fmt: skip
            for row in sorted(sweep_rows, key=lambda r: r["workers"]):
                mem = memory[row["workers"]]
                print(f"  Q_WORKERS={row['workers']:3d}  {row['rate']:7.1f} orders/s  ideal {row['ideal']:5.0f}  "
                      f"ratio {row['ratio']:.2f}   PSS {mem['pss_rest']:4.0f} MiB at rest, {mem['pss_peak']:4.0f} MiB peak; "
                      f"a worker's RSS peak {mem['worker_rss']:.0f} MiB")  # fmt: skip
    finally:
        for service in services:
            service.stop()
        fake.stop()
        backend.drop()


if __name__ == "__main__":
    main()
