"""An account's backlog in a few round trips: batch placement end to end (HTTP API, a real
django-q2 cluster, real ccxt, the OKX fake with OKX's rules and rate limits)."""

import random
from collections import Counter

import pytest

from orders.models import Order, OrderStatus
from orders.services.accounts import sync_accounts
from tests.e2e.test_okx_cluster import ACCOUNTS, api, creds, final, okx  # noqa: F401  (fixtures)
from tests.helpers import submit

pytestmark = pytest.mark.e2e
PLACE = "trade/batch-orders"


def placed_in_order(fake, account_id: str) -> list[str]:
    return [order["clOrdId"] for order in fake.orders(creds(account_id)[0])]


def queue_then_start(api, service_factory, items: list[dict]) -> list[str]:  # noqa: F811
    """Queue everything first (so batches are full and the order is determined), then
    start the cluster. Submitted 100 to a request, as a strategy's burst would be (and
    within the default submit rate)."""
    ids = []
    for start in range(0, len(items), 100):
        body = [
            {"account_id": item.get("account", "okx_a"), "symbol": "BTC/USDT:USDT", "side": "buy",
             "order_type": "market", "amount": 0.001, "leverage": 10, "strategy_name": "burst",
             **{k: v for k, v in item.items() if k != "account"}}
            for item in items[start : start + 100]
        ]  # fmt: skip
        response = api.post("/api/order-scheduler/submit", body, format="json")
        assert response.status_code == 201, response.content
        ids += response.json()["request_ids"]
    service = service_factory()
    service.wait_running()
    return ids


def test_it_keeps_each_accounts_order_within_and_across_batches(okx, api, service_factory):  # noqa: F811
    rng = random.Random(3)
    items = [{"account": "okx_a", "priority": rng.choice([0, 0, 5, -2])} for _ in range(50)]
    ids = queue_then_start(api, service_factory, items)

    orders = final(ids, timeout=60)

    assert {o.status for o in orders.values()} == {OrderStatus.SUCCESS}
    expected = list(
        Order.objects.filter(account_id="okx_a").order_by("-priority", "id").values_list("client_order_id", flat=True)
    )
    assert placed_in_order(okx, "okx_a") == expected
    requests = [r for r in okx.order_requests if r["apiKey"] == creds("okx_a")[0]]
    assert len(requests) <= 5, "50 orders should take a few batch requests, not one each"
    assert max(len(r["orders"]) for r in requests) == 20
    assert okx.max_concurrent_orders[creds("okx_a")[0]] == 1


def test_it_fails_only_the_members_the_exchange_refused(okx, api, service_factory):  # noqa: F811
    items = [{"account": "okx_a"} for _ in range(10)]
    ids = [submit(api, **item).request_id for item in items]
    refused = {Order.objects.get(request_id=ids[n]).client_order_id for n in (1, 4, 7)}
    okx.refuse_orders(refused, code="51008")
    service = service_factory()
    service.wait_running()

    orders = final(ids, timeout=60)

    for order in orders.values():
        if order.client_order_id in refused:
            assert (order.status, order.error_code) == (OrderStatus.FAILED, "51008")
        else:
            assert order.status == OrderStatus.SUCCESS and okx.order_count(order.client_order_id) == 1
    assert len([r for r in okx.order_requests if r["apiKey"] == creds("okx_a")[0]]) == 1  # one batch


def test_it_reconciles_a_dropped_batch_reply_with_one_order_per_member(okx, api, service_factory):  # noqa: F811
    okx.inject("drop_after_record", path_suffix=PLACE, times=1)
    ids = queue_then_start(api, service_factory, [{"account": "okx_a"} for _ in range(12)])

    orders = final(ids, timeout=60)

    assert {o.status for o in orders.values()} == {OrderStatus.SUCCESS}
    assert okx.duplicate_cl_ord_ids() == {}
    assert all(okx.order_count(o.client_order_id) == 1 for o in orders.values())
    # Looked up through the account's order lists, not one request per member.
    lookups = [r for r in okx.requests_log if r["path"].endswith("trade/order") and r["method"] == "GET"]
    assert len(lookups) < 12


def test_it_places_a_1000_order_burst_within_okxs_rate_limits(okx, api, service_factory):  # noqa: F811
    items = [{"account": ACCOUNTS[n % 4]} for n in range(1000)]
    ids = queue_then_start(api, service_factory, items)

    orders = final(ids, timeout=180)

    assert Counter(o.status for o in orders.values()) == {OrderStatus.SUCCESS: 1000}
    outcomes = Counter(r["outcome"] for r in okx.order_requests)
    assert not [o for o in outcomes if o.startswith("rate_limited")], outcomes
    assert okx.duplicate_cl_ord_ids() == {}
    for account_id in ACCOUNTS:
        assert okx.max_concurrent_orders[creds(account_id)[0]] == 1


def test_it_sends_one_order_per_request_on_an_account_with_batching_off(okx, api, service_factory, tmp_path):  # noqa: F811
    import json
    import os

    path = os.environ["ORDER_SCHEDULER_ACCOUNTS_FILE"]
    accounts = json.loads(open(path).read())
    for entry in accounts["accounts"]:
        entry["options"] = {**entry.get("options", {}), "batch": False}
    with open(path, "w") as file:
        json.dump(accounts, file)
    sync_accounts(path=path)
    ids = queue_then_start(api, service_factory, [{"account": "okx_a"} for _ in range(6)])

    final(ids, timeout=60)

    requests = [r for r in okx.order_requests if r["apiKey"] == creds("okx_a")[0]]
    assert [len(r["orders"]) for r in requests] == [1] * 6
