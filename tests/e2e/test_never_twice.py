"""Never twice on OKX's real rules, end to end: HTTP API -> real django-q2 cluster -> real
ccxt -> the local OKX fake, which refuses a repeated clOrdId only while the earlier order
is pending, honours expTime and can process a request late.

Every test asserts exactly one order at the fake per request and never two order
requests of one API key in flight at once (a request whose deadline has passed no
longer counts: OKX can no longer place anything of it)."""

import json
import os
import signal
import time

import pytest

from orders.models import Account, Order, OrderStatus
from orders.services.journal import journal_path
from tests.conftest import wait_for
from tests.e2e.test_okx_cluster import api, at_fake, creds, final, okx  # noqa: F401  (fixtures)
from tests.helpers import submit

pytestmark = pytest.mark.e2e
KEY = creds("okx_a")[0]
PLACE = "trade/batch-orders"


@pytest.fixture
def service(service_factory, okx):  # noqa: F811
    service = service_factory()
    service.wait_running()
    return service


def one_order_each(fake, orders) -> None:
    assert fake.duplicate_cl_ord_ids() == {}
    for order in orders:
        assert fake.order_count(order.client_order_id) == (1 if order.status == OrderStatus.SUCCESS else 0), order
    assert fake.max_concurrent_orders.get(KEY, 0) <= 1, "two order requests of one key in flight at once"


def operator_client():
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests.conftest import user_with_role

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user_with_role('ops', 'admin')).key}")
    return client


def lease_holder_pid(account_id="okx_a") -> int:
    owner = wait_for(lambda: Account.objects.get(pk=account_id).lease_owner, timeout=10, message="a lease holder")
    return int(owner.split(":")[1])


def test_it_places_an_order_whose_first_request_is_processed_late_exactly_once(okx, api, service):  # noqa: F811
    okx.inject("hold_before", path_suffix=PLACE, times=1, seconds=4)  # after ccxt's 1 s timeout
    request_id = submit(api, account="okx_a").request_id

    order = final([request_id], timeout=30)[request_id]

    assert order.status == OrderStatus.SUCCESS and order.attempts == 2
    one_order_each(okx, [order])
    first, second = okx.wait_for_request(2, api_key=KEY, timeout=10, state="done")[:2]
    # The late original came to be processed after its deadline: OKX placed nothing.
    assert first["outcome"] == "expired:50037"
    # The re-send left only once the first request's deadline had passed.
    assert second["arrivedMs"] > first["expTime"] and second["outcome"] == "accepted"


@pytest.mark.parametrize("late", [0.4, 3.0], ids=["processed-before-its-deadline", "processed-after-it"])
def test_it_settles_a_50004_that_the_exchange_processes_later(okx, api, service, late):  # noqa: F811
    okx.inject("code_then_process", path_suffix=PLACE, times=1, seconds=late)
    request_id = submit(api, account="okx_a").request_id

    order = final([request_id], timeout=30)[request_id]

    assert order.status == OrderStatus.SUCCESS
    one_order_each(okx, [order])
    if late < 1:  # placed by the first request, found by the look-up: never sent again
        [first] = okx.order_requests
        assert first["outcome"] == "accepted" and order.attempts == 1
    else:  # processed after its deadline: OKX placed nothing, and the re-send did
        [first] = okx.wait_for_request(1, api_key=KEY, timeout=10, outcome="expired:50037")
        assert order.attempts == 2 and len(okx.order_requests) == 2


def test_it_never_sends_twice_when_the_lease_holder_stalls_past_its_lease(okx, api, service):  # noqa: F811
    okx.inject("hold_before", path_suffix=PLACE, times=1, seconds=6)
    request_id = submit(api, account="okx_a").request_id
    okx.wait_for_request(1, api_key=KEY, timeout=15, state="held")
    stalled = lease_holder_pid()
    os.kill(stalled, signal.SIGSTOP)
    try:
        # Its lease (3 s) runs out; another worker takes the account over, settles the
        # order in flight and sends it again only after the first request's deadline.
        order = final([request_id], timeout=30)[request_id]
        behind = submit(api, account="okx_a").request_id
    finally:
        os.kill(stalled, signal.SIGCONT)
    okx.wait_for_request(1, api_key=KEY, timeout=15, outcome="expired:50037")  # the stalled request, late
    orders = final([request_id, behind], timeout=30)
    time.sleep(1.0)  # the resumed worker's last steps, if it had any left

    assert order.status == OrderStatus.SUCCESS
    one_order_each(okx, Order.objects.filter(request_id__in=[request_id, behind]))
    assert orders[behind].status == OrderStatus.SUCCESS
    first, resent = [r for r in okx.order_requests if r["orders"][0]["clOrdId"] == order.client_order_id][:2]
    assert resent["arrivedMs"] > first["expTime"]


def test_it_never_sends_twice_after_a_task_timeout_mid_send(okx, api, service_factory):  # noqa: F811
    # django-q2 stops the task after Q_TIMEOUT while the exchange holds its request; the
    # account's requests may take up to 30 s (its timeout_ms), longer than the task.
    accounts = json.loads(open(os.environ["ORDER_SCHEDULER_ACCOUNTS_FILE"]).read())
    for entry in accounts["accounts"]:
        entry["options"] = {"timeout_ms": 30000}
    with open(os.environ["ORDER_SCHEDULER_ACCOUNTS_FILE"], "w") as file:
        json.dump(accounts, file)
    service = service_factory(
        env={"Q_TIMEOUT": "12", "Q_RETRY": "30", "ORDER_SCHEDULER_EXCHANGE_TIMEOUT": "0.5", "TELEGRAM_TIMEOUT": "3"}
    )
    service.wait_running()
    okx.inject("hold_before", path_suffix=PLACE, times=1, seconds=16)
    request_id = submit(api, account="okx_a").request_id
    okx.wait_for_request(1, api_key=KEY, timeout=15, state="held")

    order = final([request_id], timeout=40)[request_id]
    okx.wait_for_request(1, api_key=KEY, timeout=20, outcome="expired:50037")  # the held original, too late
    after = submit(api, account="okx_a").request_id  # the cluster goes on after the timeout

    orders = final([request_id, after], timeout=40)
    assert order.status == OrderStatus.SUCCESS
    one_order_each(okx, orders.values())


def test_it_holds_orders_through_an_outage_and_lets_those_behind_expire(okx, api, service):  # noqa: F811
    outage = okx.inject("maintenance", path_suffix=PLACE)
    held = submit(api, account="okx_a", expires_in=60).request_id
    behind = [submit(api, account="okx_a", expires_in=3).request_id for _ in range(2)]
    wait_for(lambda: Account.objects.get(pk="okx_a").degraded_since, timeout=15, message="the account degraded")
    status = api.get("/api/order-scheduler/status").json()["status"]
    [account] = [a for a in status["accounts"] if a["id"] == "okx_a"]
    assert account["degraded"] and "maintenance" in account["degraded_reason"]

    expired = final(behind, timeout=20)
    time.sleep(20 - 5)  # twenty seconds of outage in all, far past the old 6 tries
    assert Order.objects.get(request_id=held).status == OrderStatus.PROCESSING  # held, not failed
    okx.remove_fault(outage)

    orders = final([held], timeout=30)
    assert orders[held].status == OrderStatus.SUCCESS
    assert {o.status for o in expired.values()} == {OrderStatus.EXPIRED}
    one_order_each(okx, [*orders.values(), *expired.values()])
    wait_for(lambda: not Account.objects.get(pk="okx_a").degraded_since, timeout=5, message="degraded cleared")


def test_it_never_sends_an_unknown_order_past_its_expiry_on_resume(okx, api, service):  # noqa: F811
    # Its reply is lost (50004, nothing placed) and the look-ups fail: it stays unknown.
    okx.inject("code", code="50004", path_suffix=PLACE, times=1)
    lookups = okx.inject("code", code="50013", path_suffix="trade/order", method="GET")
    request_id = submit(api, account="okx_a", expires_in=3).request_id
    wait_for(
        lambda: Order.objects.get(request_id=request_id).status == OrderStatus.UNKNOWN, timeout=15, message="unknown"
    )
    operator = operator_client()
    assert (
        operator.post("/api/order-scheduler/pause", {"account": "okx_a", "reason": "check"}, format="json").status_code
        == 200
    )
    wait_for(lambda: Order.objects.get(request_id=request_id).expires_at.timestamp() < time.time() - 1, timeout=10,
             message="the order's expiry to pass")  # fmt: skip
    okx.remove_fault(lookups)

    assert operator.post("/api/order-scheduler/resume", {"account": "okx_a"}, format="json").status_code == 200

    order = final([request_id], timeout=20)[request_id]
    assert (order.status, order.error_code) == (OrderStatus.EXPIRED, "expired")
    one_order_each(okx, [order])
    assert len(okx.order_requests) == 1


def test_it_fails_a_market_order_the_exchange_cancelled_unfilled(okx, api, service):  # noqa: F811
    okx.inject("market_canceled", path_suffix=PLACE, times=1)
    request_id = submit(api, account="okx_a").request_id

    wait_for(
        lambda: Order.objects.get(request_id=request_id).status == OrderStatus.FAILED,
        timeout=30,
        message="the tracker to see the exchange's cancel",
    )

    order = Order.objects.get(request_id=request_id)
    assert (order.error_code, order.exchange_state) == ("exchange_cancelled", "cancelled")
    assert okx.order_count(order.client_order_id) == 1
    path = journal_path(order.finished_at)
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) == 2, timeout=10, message="two lines")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["request_id"], line["status"]) for line in lines] == [(request_id, "success"), (request_id, "failed")]


@pytest.mark.parametrize("placed", [True, False], ids=["placed", "not-placed"])
def test_it_lets_an_operator_settle_an_unknown_order(okx, api, service, placed):  # noqa: F811
    # Placed (or not) by a request whose answer was lost; the look-ups fail meanwhile.
    okx.inject("code_then_process" if placed else "code", code="50004", path_suffix=PLACE, times=1, seconds=0.2)
    lookups = okx.inject("code", code="50013", path_suffix="trade/order", method="GET")
    request_id = submit(api, account="okx_a").request_id
    wait_for(
        lambda: Order.objects.get(request_id=request_id).status == OrderStatus.UNKNOWN, timeout=15, message="unknown"
    )
    operator = operator_client()
    assert (
        operator.post("/api/order-scheduler/pause", {"account": "okx_a", "reason": "check"}, format="json").status_code
        == 200
    )
    okx.remove_fault(lookups)
    order = Order.objects.get(request_id=request_id)
    wait_for(lambda: time.time() > order.deadline_at.timestamp() + 1, timeout=5, message="its deadline to pass")

    if placed:
        exchange_order_id = okx.get_order(order.client_order_id)["ordId"]
        body = {"outcome": "placed", "exchange_order_id": exchange_order_id}
    else:
        body = {"outcome": "not_placed"}
    response = operator.post(f"/api/order-scheduler/orders/{request_id}/settle", body, format="json")

    assert response.status_code == 200, response.json()
    order.refresh_from_db()
    assert order.status == (OrderStatus.SUCCESS if placed else OrderStatus.FAILED)
    assert operator.post("/api/order-scheduler/resume", {"account": "okx_a"}, format="json").status_code == 200
    behind = submit(api, account="okx_a").request_id
    final([behind], timeout=20)
    one_order_each(okx, Order.objects.filter(request_id__in=[request_id, behind]))
