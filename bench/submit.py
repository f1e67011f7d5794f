"""Submit under saturation against the stack's ceiling: a bare Django + DRF view that
inserts one order row (no validation, no authentication), measured side by side.

By default the service runs as `make run` starts it (`manage.py serve` with its
defaults: gunicorn web workers, the django-q2 cluster and the supervisor) on a fresh
SQLite file with the example paper accounts, so the workers drain the submitted orders
while the clients keep sending. `--web-only` runs gunicorn alone (no cluster), as this
script did before; `--ceiling django` measures against a plain Django view instead of
the DRF one. Rounds alternate (bare, submit, bare, submit, ...) so that a noisy machine
affects both alike; prints each round (with the service's CPU per request, web and
cluster), the medians over rounds of throughput, p50 and p99, the ratios, what a request
costs the whole service in CPU (web and cluster: when the machine is the limit, the
throughputs stand in the inverse ratio), and the machine.

    .venv/bin/python bench/submit.py [--rounds 3] [--seconds 3] [--clients 8] [--web-only]
                                     [--ceiling drf|django] [--trace-locks]

--trace-locks also prints, per process kind and place, how long transactions waited for
SQLite's write lock and held it (bench/locktrace.py; it slows the service a little).
"""

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Service,
    WebServer,
    bench_env,
    median,
    percentile,
    prepare_database,
    run_load,
)


def order(n: int) -> dict:
    accounts = ["account_main", "account_poit_main", "account_hedge", "account_spot"]
    return {
        "account_id": accounts[n % 4],
        "symbol": "BTC/USDT:USDT" if n % 4 != 3 else "BTC/USDT",
        "side": "buy" if n % 2 else "sell",
        "order_type": "market",
        "amount": 0.001,
        "strategy_name": f"bench_{n % 10}",
    }


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_by_part(root: int) -> dict[str, float]:
    """CPU seconds used so far by the service's web processes (gunicorn) and the rest
    (the django-q2 cluster and the supervisor)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parts = {"web": 0.0, "cluster": 0.0}
    for pid in _tree(root):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / ticks
        parts["web" if b"gunicorn" in cmdline else "cluster"] += used
    return parts


def cpu_busy() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    import django

    return (
        f"{os.cpu_count()} CPUs ({model or platform.machine()}), python {platform.python_version()}, "
        f"django {django.get_version()}, sqlite {sqlite3.sqlite_version}, load average {os.getloadavg()[0]:.2f} at start"
    )


def drained() -> dict[str, int]:
    from django.db.models import Count

    from orders.models import Order

    return dict(Order.objects.values_list("status").annotate(n=Count("id")).order_by())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-only", action="store_true", help="gunicorn alone, no cluster draining")
    parser.add_argument(
        "--ceiling", choices=["drf", "django"], default="drf", help="the bare view: DRF or plain Django"
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--trace-locks", action="store_true", help="log each transaction's lock wait and hold")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    extra = {"DATABASE_URL": args.database_url} if args.database_url else {}
    # A cluster name of its own: never take (or leave) tasks of another running service.
    if args.trace_locks:
        extra["BENCH_LOCK_TRACE"] = str(workdir / "locks")
    env = bench_env(workdir / "bench.sqlite3", Q_CLUSTER_NAME=f"benchsubmit{os.getpid()}", **extra)
    token = prepare_database(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    print(f"machine: {machine()}")
    if args.web_only:
        server = WebServer(env)
        stack = "gunicorn 2 workers x 4 threads alone (no cluster)"
    else:
        server = Service(env, workers=settings.Q_WORKERS, log_path=workdir / "serve.log")
        stack = (
            f"manage.py serve defaults: gunicorn {settings.WEB_CONCURRENCY} workers + django-q2 cluster "
            f"({settings.Q_WORKERS} workers, {'Redis' if settings.REDIS_URL else 'ORM'} broker) + supervisor"
        )
    print(f"stack: {stack}; database {env['DATABASE_URL'].split(':')[0]}; {args.clients} keep-alive clients")
    json_headers = {"Content-Type": "application/json"}
    ceiling_path = "/bench/bare-drf-insert" if args.ceiling == "drf" else "/bench/bare-insert"
    ceiling_label = "bare Django + DRF insert" if args.ceiling == "drf" else "bare Django insert"
    rounds: dict[str, list[dict]] = {"bare": [], "submit": []}
    busy_start = cpu_busy()
    try:
        for _ in range(args.rounds):
            for name, path, headers in [
                ("bare", ceiling_path, json_headers),
                ("submit", "/api/order-scheduler/submit", {**json_headers, "Authorization": f"Token {token}"}),
            ]:
                cpu_before = cpu_by_part(server.proc.pid)
                result = run_load(
                    server.port, method="POST", path=path, bodies=order, headers=headers,
                    clients=args.clients, seconds=args.seconds,
                )  # fmt: skip
                if result["errors"]:
                    raise SystemExit(f"{name}: {result['errors']} requests failed")
                cpu_after = cpu_by_part(server.proc.pid)
                lat = result["latencies"]
                row = {"rate": result["rate"], "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat)}
                row.update({f"cpu_{k}": (cpu_after[k] - cpu_before[k]) / result["count"] for k in cpu_after})
                rounds[name].append(row)
                print(
                    f"  round {len(rounds[name])} {name:6s} {row['rate']:8.1f} req/s  p50 {row['p50'] * 1000:6.1f} ms"
                    f"  p99 {row['p99'] * 1000:7.1f} ms  max {row['max'] * 1000:7.1f} ms  ({result['count']} requests;"
                    f" CPU per request: web {row['cpu_web'] * 1000:.1f} ms, cluster {row['cpu_cluster'] * 1000:.1f} ms)"
                )
        statuses = drained()
    finally:
        server.stop()
    busy_end = cpu_busy()
    busy = (busy_end[0] - busy_start[0]) / max(1, busy_end[1] - busy_start[1]) * 100

    med = {name: {k: median([r[k] for r in rows]) for k in ("rate", "p50", "p99")} for name, rows in rounds.items()}
    print()
    print(f"machine busy {busy:.0f} % during the rounds (all processes, all CPUs)")
    if not args.web_only:
        total = sum(statuses.values())
        print(f"orders in the database at the end: {total}, by status: {dict(sorted(statuses.items()))}")
    print(f"medians of {args.rounds} alternating rounds of {args.seconds:g} s")
    print(f"{'endpoint':28s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'web CPU ms/req':>15s}")
    for name, label in [("bare", ceiling_label), ("submit", "POST submit")]:
        m = med[name]
        cpu = median([r["cpu_web"] for r in rounds[name]])
        print(f"{label:28s} {m['rate']:8.1f} {m['p50'] * 1000:8.1f} {m['p99'] * 1000:8.1f} {cpu * 1000:15.2f}")
    throughput = med["submit"]["rate"] / med["bare"]["rate"]
    tail = med["submit"]["p99"] / med["bare"]["p99"]
    print(f"throughput submit / ceiling: {throughput:.2f} (goal >= 0.5)")
    print(f"p99 submit / ceiling: {tail:.2f} (goal <= 3)")
    # When the machine is the limit, the throughputs stand in the inverse ratio of what a
    # request costs the whole service (web, and the cluster executing what it queued).
    cost = {name: median([r["cpu_web"] + r["cpu_cluster"] for r in rows]) for name, rows in rounds.items()}
    print(
        f"service CPU per request (web + cluster): ceiling {cost['bare'] * 1000:.2f} ms, submit "
        f"{cost['submit'] * 1000:.2f} ms; ceiling / submit {cost['bare'] / cost['submit']:.2f}"
    )
    if args.trace_locks:
        from bench.locktrace import report

        print("\nSQLite write lock, ms, all transactions of the run (start-up included):")
        print("\n".join(report(env["BENCH_LOCK_TRACE"])))


if __name__ == "__main__":
    main()
