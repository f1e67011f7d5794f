"""End to end through the HTTP API and a real django-q2 cluster on a real SQLite file."""

import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from orders.models import Account, Order, OrderStatus, PaperOrder
from orders.services.accounts import sync_accounts
from orders.services.journal import journal_path
from tests.conftest import user_with_role, wait_for

pytestmark = pytest.mark.e2e

ACCOUNTS = ["acc_a", "acc_b", "acc_c", "acc_d"]


def write_accounts(path: Path, *, latency_ms: int) -> Path:
    accounts = [
        {"id": a, "mode": "paper", "options": {"latency_ms": latency_ms, "reference_prices": {"BTC/USDT:USDT": 65000}}}
        for a in ACCOUNTS
    ]
    path.write_text(json.dumps({"accounts": accounts}))
    return path


class Api:
    def __init__(self, base_url: str):
        user = user_with_role("trader")
        self.token = Token.objects.create(user=user).key
        self.base_url = base_url

    def submit(self, body) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/api/order-scheduler/submit",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def order_body(account: str, n: int, priority: int = 0) -> dict:
    return {
        "account_id": account,
        "symbol": "BTC/USDT:USDT",
        "side": "buy" if n % 2 else "sell",
        "order_type": "market",
        "amount": 0.001,
        "leverage": 10,
        "strategy_name": f"strategy_{n % 3}",
        "priority": priority,
    }


def submit_concurrently(api: Api, bodies: list[dict], clients: int = 8) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()
    pending = list(bodies)

    def client():
        while True:
            with lock:
                if not pending:
                    return
                body = pending.pop(0)
            request_id = api.submit(body)["request_id"]
            with lock:
                ids.append(request_id)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def assert_never_two_in_flight(account_id: str, *, died: dict[str, float] | None = None) -> None:
    """One request at a time: the orders of one request (a batch) share its start, and
    the next request starts after the last of them finished. `died` gives, for an order
    whose worker was killed mid-call, when it was killed: its call never finished, so the
    kill ends its time in flight."""
    requests: dict[float, list[float | None]] = {}
    for row in PaperOrder.objects.filter(account_id=account_id).order_by("started"):
        requests.setdefault(row.started, []).append(row.finished or (died or {}).get(row.client_order_id))
    starts = sorted(requests)
    for previous, current in zip(starts, starts[1:]):
        assert None not in requests[previous], f"a request started at {previous} never finished"
        assert current >= max(requests[previous]), f"{account_id}: two requests in flight at once"


def test_it_executes_4_accounts_x_50_orders_once_each_one_at_a_time_in_priority_order(
    live_server, service_factory, tmp_path, settings
):
    accounts_file = write_accounts(tmp_path / "accounts.json", latency_ms=15)
    sync_accounts(path=accounts_file)
    api = Api(live_server.url)
    rng = random.Random(7)

    # Phase 1: queued by concurrent clients before any worker runs, so the execution
    # order per account must be exactly priority first, then first-in first-out.
    first = [order_body(a, n, priority=rng.choice([0, 0, 1, 5])) for n in range(25) for a in ACCOUNTS]
    first_ids = submit_concurrently(api, first)
    service = service_factory(env={"ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_file})
    service.wait_running()
    # Phase 2: the rest arrive while the cluster is draining.
    second_ids = submit_concurrently(api, [order_body(a, n) for n in range(25, 50) for a in ACCOUNTS])
    all_ids = first_ids + second_ids
    assert len(set(all_ids)) == 200

    wait_for(
        lambda: Order.objects.filter(status=OrderStatus.SUCCESS).count() == 200,
        timeout=90,
        message="200 orders to succeed",
    )
    assert Order.objects.exclude(status=OrderStatus.SUCCESS).count() == 0
    # Every request_id reached the (paper) exchange exactly once.
    client_ids = set(Order.objects.values_list("client_order_id", flat=True))
    assert PaperOrder.objects.count() == 200
    assert set(PaperOrder.objects.values_list("client_order_id", flat=True)) == client_ids
    for account_id in ACCOUNTS:
        assert_never_two_in_flight(account_id)
        phase1 = list(Order.objects.filter(account_id=account_id, request_id__in=first_ids).order_by("-priority", "id"))
        executed = {row.client_order_id: row.started for row in PaperOrder.objects.filter(account_id=account_id)}
        by_execution = sorted(phase1, key=lambda order: executed[order.client_order_id])
        assert [o.request_id for o in by_execution] == [o.request_id for o in phase1]
    # The journal has exactly one line per order.
    lines = [json.loads(line) for line in journal_path(Order.objects.first().finished_at).read_text().splitlines()]
    assert sorted(line["request_id"] for line in lines) == sorted(all_ids)
    assert {line["status"] for line in lines} == {"success"}
    assert not Account.objects.filter(paused=True).exists()


def test_it_finishes_an_order_exactly_once_after_its_worker_is_killed_mid_order(live_server, service_factory, tmp_path):
    accounts_file = write_accounts(tmp_path / "accounts.json", latency_ms=4000)
    sync_accounts(path=accounts_file)
    api = Api(live_server.url)
    service = service_factory(env={"ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_file})
    service.wait_running()

    victim = api.submit(order_body("acc_a", 1))["request_id"]
    behind = [api.submit(order_body("acc_a", n))["request_id"] for n in range(2, 5)]
    client_id = Order.objects.get(request_id=victim).client_order_id
    paper = wait_for(
        lambda: PaperOrder.objects.filter(client_order_id=client_id).first(), timeout=20, message="the order to be sent"
    )
    os.kill(paper.worker_pid, signal.SIGKILL)
    killed_at = time.time()
    # The paper exchange was told about the order but the worker died before it could
    # record the outcome: the order is stuck "processing" until recovery reconciles it.
    assert Order.objects.get(request_id=victim).status == OrderStatus.PROCESSING

    Account.objects.filter(pk="acc_a").update(options={"latency_ms": 10})
    wait_for(
        lambda: Order.objects.filter(request_id__in=[victim, *behind], status=OrderStatus.SUCCESS).count() == 4,
        timeout=60,
        message="the killed order and those behind it to succeed",
    )
    assert PaperOrder.objects.filter(client_order_id=client_id).count() == 1
    assert PaperOrder.objects.filter(account_id="acc_a").count() == 4
    order = Order.objects.get(request_id=victim)
    assert order.order_id == paper.exchange_order_id
    # The kill ended the request it interrupted, for every order it carried.
    killed = PaperOrder.objects.filter(account_id="acc_a", started=paper.started)
    assert_never_two_in_flight("acc_a", died={row.client_order_id: killed_at for row in killed})


def test_it_keeps_executing_after_an_idle_worker_is_killed(live_server, service_factory, tmp_path):
    # Killing an idle django-q2 worker can freeze the whole cluster (django-q2's own
    # behaviour); the supervisor must notice that orders wait with none started, and
    # restart it.
    accounts_file = write_accounts(tmp_path / "accounts.json", latency_ms=0)
    sync_accounts(path=accounts_file)
    api = Api(live_server.url)
    service = service_factory(env={"ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_file, "ORDER_SCHEDULER_STALL_SECONDS": 4})
    service.wait_running()
    from django_q.status import Stat

    [stat] = [s for s in Stat.get_all() if s.sentinel in service.children()]
    for pid in stat.workers:
        os.kill(pid, signal.SIGKILL)

    ids = [api.submit(order_body(a, n))["request_id"] for n in range(3) for a in ACCOUNTS]

    wait_for(
        lambda: Order.objects.filter(request_id__in=ids, status=OrderStatus.SUCCESS).count() == len(ids),
        timeout=60,
        message="orders submitted after the workers were killed to succeed",
    )
    assert PaperOrder.objects.count() == len(ids)


def test_it_keeps_one_order_in_flight_per_account_with_two_clusters_as_two_hosts(
    live_server, service_factory, tmp_path
):
    accounts_file = write_accounts(tmp_path / "accounts.json", latency_ms=10)
    sync_accounts(path=accounts_file)
    api = Api(live_server.url)
    hosts = [service_factory(env={"ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_file, "Q_WORKERS": 3}) for _ in range(2)]
    for host in hosts:
        host.wait_running()

    ids = submit_concurrently(api, [order_body(a, n) for n in range(50) for a in ACCOUNTS])

    wait_for(
        lambda: Order.objects.filter(request_id__in=ids, status=OrderStatus.SUCCESS).count() == 200,
        timeout=120,
        message="200 orders to succeed",
    )
    assert PaperOrder.objects.count() == 200
    assert PaperOrder.objects.values("client_order_id").distinct().count() == 200
    for account_id in ACCOUNTS:
        assert_never_two_in_flight(account_id)
    # Both hosts really took part.
    pids_by_host = [set(host.children()) for host in hosts]
    executing = set(PaperOrder.objects.values_list("worker_pid", flat=True))
    assert all(executing & pids for pids in pids_by_host)
