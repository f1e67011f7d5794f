"""The live event stream under load: change->client latency, submit latency with and
without 200 open streams, and memory per open stream.

gunicorn runs as `manage.py serve` starts it (gthread, 4 + ORDER_SCHEDULER_STREAMS_PER_WORKER
threads per worker, orders.gunicorn_conf) on a fresh SQLite file, or on the database of
--database-url (with --redis-url for the cache, as in scale-out). Rounds of submits
alternate between 0 and --streams open idle streams. Then this process writes events
itself (a committed OrderEvent through orders.services.transitions.service_event, the
path every change takes) and one of the open streams times each from the commit to its
frame arriving.

    .venv/bin/python bench/stream.py [--streams 200] [--rounds 6] [--seconds 2] [--samples 200]
        [--follow-all] [--database-url postgres://... --redis-url redis://...]
"""

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BASE_DIR, bench_env, free_port, median, percentile, prepare_database, run_load  # noqa: E402
from bench.submit import order  # noqa: E402


class Server:
    """gunicorn with exactly the arguments `manage.py serve` gives it."""

    def __init__(self, env: dict, *, workers: int):
        self.port = free_port()
        code = "import sys; from django.conf import settings; print(4 + settings.ORDER_SCHEDULER['STREAMS_PER_WORKER'])"
        threads = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", code],
            env=env, cwd=BASE_DIR, capture_output=True, text=True, check=True,
        ).stdout.split()[-1]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "scheduler_site.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--worker-class", "gthread", "--threads", threads,
             "--config", "python:orders.gunicorn_conf", "--graceful-timeout", "10", "--log-level", "warning"],
            env=env, cwd=BASE_DIR,
        )  # fmt: skip
        self.threads = int(threads)

    def workers_rss_kib(self) -> int:
        out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(self.proc.pid)], capture_output=True, text=True).stdout
        return sum(int(line) for line in out.split())

    def stop(self) -> float:
        started = time.monotonic()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return time.monotonic() - started


class Streams:
    """Open SSE connections, driven by one asyncio loop in a thread. HTTP/1.0 keeps the
    body plain (no chunked framing): the stream is the rest of the connection."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.writers = []
        self.arrived: dict[int, float] = {}
        self.wanted: dict[int, asyncio.Event] = {}

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _open(self, watch: bool, query: str = "") -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            (
                f"GET /api/order-scheduler/events?heartbeat=15{query} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Token {self.token}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while (await reader.readline()).strip():
            pass  # headers
        while not (line := await reader.readline()).startswith(b"event: ready"):
            if not line:
                raise RuntimeError("stream ended before it was ready")
        self.writers.append(writer)
        self.loop.create_task(self._read(reader, writer, watch))

    async def _read(self, reader, writer, watch: bool) -> None:
        while True:
            if not watch:
                if not await reader.read(65536):
                    writer.close()  # the server ended the stream: hang up, as EventSource does
                    return
                continue
            line = await reader.readline()
            if not line:
                writer.close()
                return
            if line.startswith(b"id: "):
                event_id = int(line[4:])
                self.arrived.setdefault(event_id, time.perf_counter())
                if event_id in self.wanted:
                    self.wanted[event_id].set()

    def open(self, count: int, *, watch_first: bool = False, query: str = "") -> None:
        async def all_of():
            for start in range(0, count, 50):  # not all at once: the accept queue is finite
                batch = range(start, min(count, start + 50))
                await asyncio.gather(*(self._open(watch_first and n == 0, query) for n in batch))

        self.run(all_of())

    def wait_for(self, event_id: int, timeout: float = 10) -> float:
        async def wait():
            if event_id not in self.arrived:
                self.wanted[event_id] = asyncio.Event()
                if event_id not in self.arrived:
                    await asyncio.wait_for(self.wanted[event_id].wait(), timeout)
            return self.arrived[event_id]

        return self.run(wait())

    def close(self) -> None:
        async def close_all():
            for writer in self.writers:
                writer.close()
            self.writers.clear()

        self.run(close_all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=4, help="keep-alive submit clients")
    parser.add_argument("--samples", type=int, default=200, help="events timed from commit to client")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--redis-url", help="the cache, as in scale-out")
    parser.add_argument(
        "--follow-all",
        action="store_true",
        help="the open streams follow every order (as dashboards do); default: idle streams, each following "
        "a strategy that places no order (as strategy scripts waiting for their next order)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    extra = {"DATABASE_URL": args.database_url} if args.database_url else {}
    if args.redis_url:
        extra["REDIS_URL"] = args.redis_url
    env = bench_env(workdir / "bench.sqlite3", **extra)
    token = prepare_database(env)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ORDER_SCHEDULER_LOG_DIR")})
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    import django

    django.setup()
    from orders.services.transitions import service_event

    load_before = os.getloadavg()[0]
    server = Server(env, workers=args.workers)
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
    streams = Streams(server.port, token)
    p50 = {0: [], args.streams: []}
    latencies: list[float] = []
    per_stream: list[float] = []
    stop = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                streams.open(1, watch_first=True)  # the timed client (counted among the streams)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        submit = {"method": "POST", "path": "/api/order-scheduler/submit", "bodies": order, "headers": headers}
        run_load(server.port, clients=args.clients, seconds=1, **submit)  # warm-up
        for round_ in range(args.rounds):
            for count in (0, args.streams):
                if count:
                    rss_before = server.workers_rss_kib()
                    streams.open(count - 1, query="" if args.follow_all else "&strategy=bench_idle")
                    time.sleep(1)  # let the workers settle before reading their memory
                    per_stream.append((server.workers_rss_kib() - rss_before) / (count - 1))
                result = run_load(server.port, clients=args.clients, seconds=args.seconds, **submit)
                if result["errors"]:
                    raise SystemExit(f"{result['errors']} submits failed")
                p50[count].append(percentile(result["latencies"], 50) * 1000)
                print(f"submit with {count:>3} open streams: p50 {p50[count][-1]:.1f} ms, {result['rate']:.0f}/s")
                if count:
                    for _ in range(args.samples // args.rounds):
                        time.sleep(random.uniform(0.005, 0.03))  # land anywhere in the tail's poll
                        event = service_event(kind="bench_probe", reason="bench/stream.py")
                        committed = time.perf_counter()
                        latencies.append((streams.wait_for(event.id) - committed) * 1000)
                    if round_ < args.rounds - 1:
                        streams.close()
                        streams.open(1, watch_first=True)
        stop = server.stop()  # with the streams open: they must end at once
    finally:
        if stop is None:
            server.stop()
    backend = env["DATABASE_URL"].split(":")[0] + (" + Redis" if args.redis_url else "")
    print()
    print(
        f"{backend}; gunicorn {args.workers} workers x {server.threads} threads (gthread); {args.clients} submit clients"
    )
    print(
        f"change -> client with {args.streams} streams open: p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms ({len(latencies)} events)"
    )
    zero, loaded = median(p50[0]), median(p50[args.streams])
    print(f"submit p50: {zero:.1f} ms with 0 streams, {loaded:.1f} ms with {args.streams}: ratio {loaded / zero:.2f}")
    # The first opening creates the pool threads (gunicorn's pool never shrinks); later
    # rounds reuse them and cost next to nothing.
    print(f"memory per open stream: {per_stream[0]:.0f} KiB (workers' RSS, first opening; later ones reuse threads)")
    print(f"gunicorn stopped in {stop:.1f} s with {args.streams} streams open")
    print(
        f"machine load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
