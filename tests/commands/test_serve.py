"""`manage.py serve`: web server and cluster together, stopped together."""

import signal

import pytest

from tests.conftest import wait_for
from tests.helpers import free_port, get_json

pytestmark = pytest.mark.e2e


def test_it_serves_http_and_runs_the_cluster_then_stops_everything_on_sigterm(service_factory):
    port = free_port()
    service = service_factory(args=("--host", "127.0.0.1", "--port", str(port)))
    service.wait_running()
    health = wait_for(lambda: get_json(f"http://127.0.0.1:{port}/healthz"), timeout=30, message="the web server")
    assert health == {"ok": True, "database": True}
    children = service.children()
    assert len(children) >= 4  # gunicorn master + workers, qcluster + its processes

    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=45) == 0

    wait_for(lambda: not _alive(children), timeout=30, message="every child process to exit")


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive
