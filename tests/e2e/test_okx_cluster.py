"""OKX end to end: HTTP API -> real django-q2 cluster -> real ccxt -> local OKX fake."""

import json
import os
import random
import signal
from collections import Counter
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Account, Order, OrderStatus
from orders.services.accounts import sync_accounts
from tests.conftest import user_with_role, wait_for
from tests.fakes.okx import FakeOKX
from tests.helpers import submit

pytestmark = pytest.mark.e2e

ACCOUNTS = ["okx_a", "okx_b", "okx_c", "okx_d"]
SECRET_MARK = "S3CRET-VALUE"


def creds(account_id: str) -> tuple[str, str, str]:
    return f"key-{account_id}", f"{SECRET_MARK}-secret-{account_id}", f"{SECRET_MARK}-pass-{account_id}"


def env_names(account_id: str) -> tuple[str, str, str]:
    upper = account_id.upper()
    return f"{upper}_API_KEY", f"{upper}_SECRET", f"{upper}_PASSPHRASE"


@pytest.fixture
def okx(transactional_db, tmp_path, monkeypatch):
    """The fake OKX with one key per account, the accounts file pointing at it, the
    secrets in this process's environment (service subprocesses inherit it)."""
    fake = FakeOKX(accounts={creds(a)[0]: creds(a)[1:] for a in ACCOUNTS}, demo=True, seed=11).start()
    entries = []
    for account_id in ACCOUNTS:
        names = env_names(account_id)
        for name, value in zip(names, creds(account_id), strict=True):
            monkeypatch.setenv(name, value)
        entries.append(
            {
                "id": account_id,
                "mode": "demo",
                "base_url": fake.base_url,
                "api_key_env": names[0],
                "secret_env": names[1],
                "passphrase_env": names[2],
                "default_leverage": 10,
                "options": {"timeout_ms": 1000},
            }
        )
    accounts_file = tmp_path / "okx_accounts.json"
    accounts_file.write_text(json.dumps({"accounts": entries}))
    monkeypatch.setenv("ORDER_SCHEDULER_ACCOUNTS_FILE", str(accounts_file))
    report = sync_accounts(path=accounts_file)
    assert report.problems == {}
    yield fake
    fake.stop()


@pytest.fixture
def api(transactional_db):
    user = user_with_role("desk")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def service(service_factory, okx):
    service = service_factory(env={"ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS": "0.5"})
    service.wait_running()
    return service


def final(request_ids, timeout=60.0) -> dict[str, Order]:
    wait_for(
        lambda: (
            Order.objects.filter(request_id__in=request_ids, status__in=OrderStatus.final()).count() == len(request_ids)
        ),
        timeout=timeout,
        message=f"{len(request_ids)} orders to reach a final status",
    )
    return {o.request_id: o for o in Order.objects.filter(request_id__in=request_ids)}


def at_fake(fake, order: Order) -> list[dict]:
    return [o for o in fake.orders() if o["clOrdId"] == order.client_order_id]


def test_it_ends_each_error_class_in_the_right_status(okx, api, service):
    # First, while no worker has loaded the venue's markets yet (submit would refuse it
    # after that), an order for a symbol OKX does not list: the worker must fail it.
    unknown_symbol = submit(api, account="okx_a", symbol="DOGE/USDT:USDT").request_id
    # One account per fault, so that each fault meets exactly the order meant for it.
    cases = {"okx_a": "insufficient_funds", "okx_b": "rate_limit", "okx_c": "maintenance", "okx_d": "timeout_code"}
    for account_id, kind in cases.items():
        times = 2 if kind == "rate_limit" else 1
        okx.inject(kind, path_suffix="trade/batch-orders", api_key=creds(account_id)[0], times=times)
    funds, limited, maintenance, timed_out = (submit(api, account=a).request_id for a in cases)

    orders = final([funds, limited, maintenance, timed_out, unknown_symbol])

    assert orders[funds].status == OrderStatus.FAILED
    assert orders[funds].error_code == "51008"
    assert "Insufficient balance" in orders[funds].error_message
    assert orders[limited].status == OrderStatus.SUCCESS and orders[limited].attempts == 3
    assert orders[maintenance].status == OrderStatus.SUCCESS
    # 50004 left the outcome open: looked up, found absent, sent again with the same id.
    assert orders[timed_out].status == OrderStatus.SUCCESS
    assert len(at_fake(okx, orders[timed_out])) == 1
    assert orders[unknown_symbol].status == OrderStatus.FAILED
    assert "DOGE/USDT:USDT" in orders[unknown_symbol].error_message
    for request_id in (limited, maintenance, timed_out):
        assert orders[request_id].order_id == at_fake(okx, orders[request_id])[0]["ordId"]
    # Once markets are known, submit itself refuses what OKX would refuse.
    response = api.post(
        "/api/order-scheduler/submit",
        {"account_id": "okx_a", "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": 0.0001},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["amount"] == ["Below the market minimum of 0.001 BTC (0.1 contracts)."]


def test_it_succeeds_through_a_burst_with_30_percent_rate_limit_answers(okx, api, service):
    fault = okx.inject("rate_limit", path_suffix="trade/batch-orders", probability=0.3)
    ids = [submit(api, account=ACCOUNTS[n % 2]).request_id for n in range(40)]

    orders = final(ids, timeout=90)

    assert fault.fired >= 1  # requests carry up to 20 orders now: fewer requests to refuse
    assert {o.status for o in orders.values()} == {OrderStatus.SUCCESS}
    # Fill details follow from the tracker, beside the drainer.
    wait_for(
        lambda: (
            Order.objects.filter(request_id__in=ids, exchange_state="filled", filled_amount=Decimal("0.001")).count()
            == 40
        ),
        timeout=30,
        message="fill details of 40 orders",
    )
    assert len(okx.orders()) == 40
    assert all(len(at_fake(okx, order)) == 1 for order in orders.values())


@pytest.mark.parametrize(("kind", "extra"), [("drop_after_record", {}), ("hold", {"seconds": 2.5})])
def test_it_ends_a_lost_reply_in_success_with_exactly_one_order_at_the_exchange(okx, api, service, kind, extra):
    okx.inject(kind, path_suffix="trade/batch-orders", times=1, **extra)
    request_id = submit(api, account="okx_a").request_id
    behind = submit(api, account="okx_a").request_id

    orders = final([request_id, behind])

    order = orders[request_id]
    assert order.status == OrderStatus.SUCCESS
    [exchange_order] = at_fake(okx, order)
    assert order.order_id == exchange_order["ordId"]
    assert orders[behind].status == OrderStatus.SUCCESS
    assert len(okx.orders()) == 2


def test_it_keeps_every_guarantee_for_4_accounts_x_50_orders_with_random_faults(okx, api, service_factory):
    rng = random.Random(5)
    # Queue everything first so the per-account order is fully determined, then start.
    ids = [submit(api, account=a, priority=rng.choice([0, 0, 3]), side=rng.choice(["buy", "sell"])).request_id
           for _ in range(50) for a in ACCOUNTS]  # fmt: skip
    for kind, probability, extra in [
        ("rate_limit", 0.10, {}),
        ("busy", 0.05, {}),
        ("drop_after_record", 0.05, {}),
        ("hold", 0.03, {"seconds": 1.5}),
        ("latency", 0.30, {"seconds": 0.05}),
    ]:
        okx.inject(kind, path_suffix="trade/batch-orders", probability=probability, **extra)
    service = service_factory(env={"ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS": "0.5"})
    service.wait_running()

    orders = final(ids, timeout=240)

    assert Counter(o.status for o in orders.values()) == {OrderStatus.SUCCESS: 200}
    exchange_orders = okx.orders()
    assert len(exchange_orders) == 200
    assert not [c for c, n in Counter(o["clOrdId"] for o in exchange_orders).items() if n > 1]
    for account_id in ACCOUNTS:
        key = creds(account_id)[0]
        assert okx.max_concurrent_orders.get(key, 0) == 1, f"{account_id} had orders in flight at once"
        expected = list(
            Order.objects.filter(account_id=account_id)
            .order_by("-priority", "id")
            .values_list("client_order_id", flat=True)
        )
        assert [o["clOrdId"] for o in okx.orders(key)] == expected


def test_it_fails_wrong_credentials_fast_naming_the_account_without_leaking_secrets(
    okx, api, service_factory, monkeypatch
):
    # Workers read secrets from their environment: okx_b's secret is wrong there.
    monkeypatch.setenv(env_names("okx_b")[1], f"{SECRET_MARK}-wrong")
    service = service_factory()
    service.wait_running()
    request_id = submit(api, account="okx_b").request_id

    order = final([request_id], timeout=30)[request_id]

    assert order.status == OrderStatus.FAILED
    assert "okx_b" in order.error_message
    assert order.error_code == "50113"
    account = Account.objects.get(pk="okx_b")
    assert account.paused and "okx_b" in account.pause_reason
    assert okx.orders(creds("okx_b")[0]) == []
    dump = json.dumps([list(Order.objects.values()), list(Account.objects.values())], default=str)
    assert SECRET_MARK not in dump
    assert SECRET_MARK not in service.log_path.read_text()


def test_it_reconciles_an_order_whose_worker_was_killed_while_the_exchange_held_its_reply(okx, api, service):
    okx.inject("hold", path_suffix="trade/batch-orders", times=1, seconds=20)
    request_id = submit(api, account="okx_a").request_id
    behind = submit(api, account="okx_a").request_id
    wait_for(lambda: okx.orders(), timeout=20, message="the order to reach the exchange")
    owner = Account.objects.get(pk="okx_a").lease_owner
    pid = int(owner.split(":")[1])
    assert pid in service.children()

    os.kill(pid, signal.SIGKILL)

    orders = final([request_id, behind], timeout=60)
    assert orders[request_id].status == OrderStatus.SUCCESS
    assert len(at_fake(okx, orders[request_id])) == 1
    assert orders[request_id].order_id == at_fake(okx, orders[request_id])[0]["ordId"]
    assert orders[behind].status == OrderStatus.SUCCESS
    assert len(okx.orders()) == 2
