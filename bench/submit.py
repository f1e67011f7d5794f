"""Submit throughput through the production web server (gunicorn, as `make run` starts
it) against the stack's ceiling: a bare Django view that inserts one order row.

Both run in the same process tree on the same fresh SQLite file, alternating rounds so
that a noisy machine affects both alike; prints per-round figures, medians and the ratio.

    .venv/bin/python bench/submit.py [--rounds 3] [--seconds 5] [--clients 8]
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WebServer, bench_env, median, percentile, prepare_database, run_load  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    extra = {"DATABASE_URL": args.database_url} if args.database_url else {}
    env = bench_env(workdir / "bench.sqlite3", **extra)
    token = prepare_database(env)
    server = WebServer(env)
    json_headers = {"Content-Type": "application/json"}
    rows = {"bare": [], "submit": []}
    latencies = {"bare": [], "submit": []}
    try:
        for _ in range(args.rounds):
            for name, path, headers in [
                ("bare", "/bench/bare-insert", json_headers),
                ("submit", "/api/order-scheduler/submit", {**json_headers, "Authorization": f"Token {token}"}),
            ]:
                result = run_load(
                    server.port, method="POST", path=path, bodies=order, headers=headers,
                    clients=args.clients, seconds=args.seconds,
                )  # fmt: skip
                if result["errors"]:
                    raise SystemExit(f"{name}: {result['errors']} requests failed")
                rows[name].append(result["rate"])
                latencies[name].extend(result["latencies"])
                print(f"  round {len(rows[name])} {name:6s} {result['rate']:8.1f} req/s  ({result['count']} requests)")
    finally:
        server.stop()

    bare, submit = median(rows["bare"]), median(rows["submit"])
    print()
    print(
        f"database: {env['DATABASE_URL'].split(':')[0]}, gunicorn 2 workers x 4 threads, {args.clients} keep-alive clients"
    )
    print(f"{'endpoint':28s} {'median req/s':>12s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, label, rate in [("bare", "bare Django insert (ceiling)", bare), ("submit", "POST submit", submit)]:
        lat = latencies[name]
        print(f"{label:28s} {rate:12.1f} {percentile(lat, 50) * 1000:8.1f} {percentile(lat, 95) * 1000:8.1f}")
    print(f"ratio submit / ceiling: {submit / bare:.2f}")


if __name__ == "__main__":
    main()
