"""The event stream as `make run` serves it: `manage.py serve` (gunicorn + django-q2
cluster + supervisor) as a real subprocess, a strategy-like client over real HTTP."""

import json
import signal
import subprocess
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from orders.services.accounts import sync_accounts
from tests.api.test_events import Events
from tests.conftest import wait_for
from tests.helpers import LiveClient, free_port, get_json, submit

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(service_factory):
    sync_accounts()
    user = get_user_model().objects.create_superuser("root", "", "pw-root-123")
    token = Token.objects.create(user=user).key
    port = free_port()
    service = service_factory(args=("--host", "127.0.0.1", "--port", str(port)))
    service.wait_running()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: get_json(f"{url}/healthz"), timeout=30, message="the web server")
    return service, url, token


def follow(client: Events, request_id: str, *, until: str = "success") -> list[dict]:
    """Every event the stream carries up to the one that gives the order status `until`."""
    seen = []
    while True:
        frame = client.next()
        if frame["event"] != "message":
            continue
        data = json.loads(frame["data"])
        seen.append(data)
        if data["request_id"] == request_id and data["kind"] == "status" and data["to_status"] == until:
            return seen


def qcluster_pid(service) -> int:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(service.proc.pid)], capture_output=True, text=True)
    pids = [int(line.split()[0]) for line in out.stdout.splitlines() if "qcluster" in line]
    assert len(pids) == 1, out.stdout
    return pids[0]


def test_it_streams_an_order_from_submit_to_its_outcome(served):
    service, url, token = served
    client = Events(url, token=token)
    assert client.ok
    client.until("ready")
    request_id = submit(LiveClient(url, token)).request_id
    events = [e for e in follow(client, request_id) if e["request_id"] == request_id]
    client.close()
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in events]
    assert kinds[0][0] == "created"
    assert ("status", "queued", "processing") in kinds
    assert kinds[-1] == ("status", "processing", "success")
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})


def test_it_keeps_the_stream_open_through_a_cluster_restart(served):
    service, url, token = served
    client = Events(url, token=token)
    client.until("ready")
    old = qcluster_pid(service)
    service_kinds = []
    # The cluster stops (as a crash would end it); the supervisor starts a new one.
    subprocess.run(["kill", "-TERM", str(old)], check=True)
    while service_kinds[-1:] != ["cluster_up"]:
        frame = client.next()
        if frame["event"] == "message":
            data = json.loads(frame["data"])
            if data["kind"].startswith("cluster_"):
                service_kinds.append(data["kind"])
                assert data["request_id"] is None
    assert service_kinds == ["cluster_down", "cluster_up"]
    # Orders placed after the restart reach the same open stream.
    request_id = submit(LiveClient(url, token)).request_id
    assert follow(client, request_id)[-1]["to_status"] == "success"
    client.close()


def test_it_ends_open_streams_cleanly_when_the_service_stops(served):
    service, url, token = served
    client = Events(url, token=token)
    client.until("ready")
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    frames = []
    with pytest.raises(AssertionError, match="ended"):
        while True:
            frames.append(client.next())
    assert frames[-1]["event"] == "shutdown"
    assert service.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 15


def test_it_resumes_on_another_web_process_with_no_gap_and_no_duplicate(served, service_factory):
    service, url_b, token = served  # web + cluster
    port_a = free_port()
    service_factory(args=("--no-cluster", "--host", "127.0.0.1", "--port", str(port_a)))
    url_a = f"http://127.0.0.1:{port_a}"
    wait_for(lambda: get_json(f"{url_a}/healthz"), timeout=30, message="the second web server")

    on_a = Events(url_a, token=token)
    on_a.until("ready")
    first = submit(LiveClient(url_b, token)).request_id  # written by the other host's web process and cluster
    seen = follow(on_a, first)
    on_a.close()
    second = submit(LiveClient(url_b, token)).request_id  # while this client is away

    on_b = Events(url_b, token=token, last_event_id=seen[-1]["id"])
    resumed = follow(on_b, second)
    on_b.close()
    ids = [e["id"] for e in seen + resumed]
    assert ids == sorted(set(ids))
    assert {e["request_id"] for e in resumed} == {second}
    assert resumed[0]["kind"] == "created" and resumed[-1]["to_status"] == "success"
