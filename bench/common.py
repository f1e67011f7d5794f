"""Helpers shared by the benchmark scripts: a throwaway service environment, a
production web server subprocess, a keep-alive HTTP load generator, percentiles."""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(db_path: Path, **extra) -> dict:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", f"sqlite:///{db_path}")
    env.setdefault("ORDER_SCHEDULER_LOG_DIR", str(db_path.parent / "bench_logs"))
    env["DJANGO_SETTINGS_MODULE"] = "bench.bench_settings"
    env["LOG_LEVEL"] = "WARNING"
    env.setdefault("ORDER_SCHEDULER_SUBMIT_RATE", "100000000/min")  # measure capacity, not the throttle
    env.setdefault("ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL", "1")  # the local OKX fake is plain http
    env.setdefault("ORDER_SCHEDULER_DEFAULT_EXPIRES_IN", "0")  # a deep backlog must drain, not expire
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip


def prepare_database(env: dict) -> str:
    """Migrate, sync the example accounts, and return an API token for a bench user."""
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "createcachetable")
    manage(env, "sync_accounts")
    code = (
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "u, _ = get_user_model().objects.get_or_create(username='bench', defaults={'is_superuser': True, 'is_staff': True});"
        "print(Token.objects.get_or_create(user=u)[0].key)"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


class WebServer:
    """gunicorn as `manage.py serve` runs it, on a free port."""

    def __init__(self, env: dict, *, workers: int = 2, threads: int = 4):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "scheduler_site.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads), "--log-level", "warning"],
            env=env, cwd=BASE_DIR,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_load(port: int, *, method: str, path: str, bodies, headers: dict, clients: int, seconds: float) -> dict:
    """Keep-alive clients sending requests for `seconds`; returns count, rate, latencies."""
    stop_at = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(10**9))

    def client():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            body = bodies(next(counter)) if callable(bodies) else bodies
            data = json.dumps(body).encode() if body is not None else None
            started = time.perf_counter()
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status >= 400:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"count": len(latencies), "rate": len(latencies) / elapsed, "errors": errors, "latencies": latencies}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values) -> float:
    return statistics.median(values)


class Service:
    """`manage.py serve` (web + cluster + supervisor) as a subprocess on a free port, with
    `workers` cluster workers; ready once they all run and /healthz answers."""

    def __init__(self, env: dict, *, workers: int, log_path: Path):
        self.port = free_port()
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=BASE_DIR, env={**env, "Q_WORKERS": str(workers)}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        from orders.selectors import cluster_status

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited with {self.proc.returncode}; see {log_path}")
            if cluster_status()["workers"] >= workers and self._healthy():
                return
            time.sleep(0.1)
        raise SystemExit(f"serve did not start within 60 s; see {log_path}")

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
