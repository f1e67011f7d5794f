"""GET /api/order-scheduler/orders and /orders/<request_id>."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import selectors
from orders.models import OrderStatus
from tests.helpers import assert_matches_contract, contract, make_order, query_plans

URL = "/api/order-scheduler/orders"
pytestmark = pytest.mark.django_db

T0 = datetime(2026, 2, 21, 7, 30, tzinfo=UTC)


def ids(response) -> list[str]:
    return [order["request_id"] for order in response.json()["orders"]]


def newest_first(orders) -> list[str]:
    return [o.request_id for o in sorted(orders, key=lambda o: (o.created_at, o.pk), reverse=True)]


def test_it_answers_with_the_seed_shape_for_filled_and_unfilled_orders(checked_api, accounts):
    make_order(created_at=T0, strategy_name="bottom_signal_long")
    make_order(created_at=T0 + timedelta(seconds=1), status=OrderStatus.QUEUED)

    response = checked_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert_matches_contract(body, contract("orders"))
    filled, queued = body["orders"][1], body["orders"][0]
    assert filled["order_id"] is not None and queued["order_id"] is None
    assert filled["amount"] == 0.001 and filled["leverage"] == 10
    assert body["has_more"] is False and body["next_cursor"] is None


def test_it_returns_the_newest_100_by_default(checked_api, accounts):
    orders = [make_order(created_at=T0 + timedelta(seconds=n)) for n in range(103)]

    response = checked_api.get(URL)

    assert ids(response) == newest_first(orders)[:100]
    assert response.json()["has_more"] is True


def test_it_refuses_a_limit_past_the_cap_with_a_message(checked_api, accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "MAX_ORDERS_LIMIT": 5}
    orders = [make_order(created_at=T0 + timedelta(seconds=n)) for n in range(7)]

    assert ids(checked_api.get(URL, {"limit": 5})) == newest_first(orders)[:5]
    response = checked_api.get(URL, {"limit": 6})

    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Invalid query", "errors": {"limit": ["At most 5."]}}


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"account": "account_hedge"}, {"hedge"}),
        ({"status": "failed"}, {"failed"}),
        ({"status": "failed,queued"}, {"failed", "queued"}),
        ({"status": ["failed", "queued"]}, {"failed", "queued"}),
        ({"strategy": "grid_btc"}, {"grid"}),
        ({"symbol": "ETH/USDT:USDT"}, {"eth"}),
        ({"side": "sell"}, {"sell"}),
        ({"order_type": "limit"}, {"limit"}),
        ({"account": "account_hedge", "status": "failed"}, set()),
        ({"account": "account_main", "status": "failed", "side": "buy"}, {"failed"}),
        ({"account": "nobody"}, set()),
        ({"account": "", "strategy": ""}, {"plain", "hedge", "failed", "queued", "grid", "eth", "sell", "limit"}),
    ],
)
def test_it_filters(checked_api, accounts, params, expected):
    made = {
        "plain": make_order(created_at=T0),
        "hedge": make_order(created_at=T0, account="account_hedge"),
        "failed": make_order(created_at=T0, status=OrderStatus.FAILED),
        "queued": make_order(created_at=T0, status=OrderStatus.QUEUED),
        "grid": make_order(created_at=T0, strategy_name="grid_btc"),
        "eth": make_order(created_at=T0, symbol="ETH/USDT:USDT"),
        "sell": make_order(created_at=T0, side="sell"),
        "limit": make_order(created_at=T0, order_type="limit", price=60000),
    }

    response = checked_api.get(URL, params)

    assert response.status_code == 200
    assert set(ids(response)) == {made[name].request_id for name in expected}


def test_it_answers_an_empty_window_with_no_orders(checked_api, accounts):
    """since at or after until is a window with nothing in it, not an error: the schema
    cannot relate two parameters, so a request it allows is never refused."""
    make_order(created_at=T0)

    response = checked_api.get(URL, {"since": "2026-02-21T10:00Z", "until": "2026-02-21T09:00Z"})

    assert response.status_code == 200 and response.json()["orders"] == []


def test_it_filters_by_time_range_with_since_inclusive_and_until_exclusive(checked_api, accounts):
    at = {n: make_order(created_at=T0 + timedelta(hours=n)) for n in range(5)}

    response = checked_api.get(URL, {"since": "2026-02-21T08:30:00Z", "until": "2026-02-21T10:30:00+00:00"})

    assert set(ids(response)) == {at[1].request_id, at[2].request_id}


def test_it_reads_dates_and_offsetless_times_in_the_configured_time_zone(checked_api, accounts, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    # 2026-02-21 local midnight in Shanghai is 2026-02-20 16:00 UTC.
    before = make_order(created_at=datetime(2026, 2, 20, 15, 59, 59, 999999, tzinfo=UTC))
    midnight = make_order(created_at=datetime(2026, 2, 20, 16, 0, tzinfo=UTC))
    noon = make_order(created_at=datetime(2026, 2, 21, 4, 0, tzinfo=UTC))

    assert set(ids(checked_api.get(URL, {"since": "2026-02-21"}))) == {midnight.request_id, noon.request_id}
    assert ids(checked_api.get(URL, {"until": "2026-02-21"})) == [before.request_id]
    assert ids(checked_api.get(URL, {"since": "2026-02-21T12:00"})) == [noon.request_id]
    # An unencoded "+" arrives as a space; the offset still counts.
    assert ids(checked_api.get(URL + "?since=2026-02-21T12:00:00+08:00")) == [noon.request_id]


def test_it_searches_request_ids_exchange_ids_and_client_ids_by_whole_id_or_prefix(checked_api, accounts):
    first = make_order(created_at=T0, request_id="ORD_ALPHA_1", order_id="777000111")
    second = make_order(created_at=T0 + timedelta(seconds=1), request_id="ORD_ALPHA_2", order_id="777000222")
    other = make_order(created_at=T0 + timedelta(seconds=2), request_id="ORD_BETA", order_id="888")

    assert ids(checked_api.get(URL, {"q": "ORD_ALPHA_1"})) == [first.request_id]
    assert ids(checked_api.get(URL, {"q": "ORD_ALPHA"})) == [second.request_id, first.request_id]
    assert ids(checked_api.get(URL, {"q": "777000"})) == [second.request_id, first.request_id]
    assert ids(checked_api.get(URL, {"q": "888"})) == [other.request_id]
    assert ids(checked_api.get(URL, {"q": other.client_order_id[:12]})) == [other.request_id]
    assert ids(checked_api.get(URL, {"q": "ord_alpha"})) == []  # ids are case-sensitive
    assert ids(checked_api.get(URL, {"q": "ORD_ALPHA", "status": "queued"})) == []


def test_it_refuses_a_search_that_matches_too_many_orders(checked_api, accounts, monkeypatch):
    monkeypatch.setattr(selectors.history, "SEARCH_MAX_MATCHES", 2)
    for n in range(3):
        make_order(created_at=T0, request_id=f"ORD_X{n}")

    assert len(ids(checked_api.get(URL, {"q": "ORD_X1"}))) == 1
    response = checked_api.get(URL, {"q": "ORD_X"})

    assert response.status_code == 400
    assert "More than 2 orders match 'ORD_X'" in response.json()["errors"]["q"][0]


def page_through(client, params: dict) -> list[str]:
    seen, cursor = [], None
    while True:
        body = client.get(URL, {**params, **({"cursor": cursor} if cursor else {})}).json()
        seen += [order["request_id"] for order in body["orders"]]
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            return seen
        cursor = body["next_cursor"]


def test_it_pages_through_the_whole_history_without_gaps_or_repeats(checked_api, accounts):
    orders = []
    statuses = [OrderStatus.FAILED, OrderStatus.SUCCESS, OrderStatus.QUEUED]
    for n in range(23):
        # Bursts of orders created in the same microsecond straddle page boundaries.
        created = T0 + timedelta(seconds=n // 4)
        orders.append(
            make_order(created_at=created, status=statuses[n % 3], account=("account_main", "account_hedge")[n % 2])
        )

    assert page_through(checked_api, {"limit": 3}) == newest_first(orders)
    failed = [o for o in orders if o.status == OrderStatus.FAILED]
    assert page_through(checked_api, {"limit": 4, "status": "failed"}) == newest_first(failed)
    failed_or_queued = [o for o in orders if o.status != OrderStatus.SUCCESS]
    assert page_through(checked_api, {"limit": 2, "status": "queued,failed"}) == newest_first(failed_or_queued)
    hedge = [o for o in failed_or_queued if o.account_id == "account_hedge"]
    assert page_through(checked_api, {"limit": 1, "status": "queued,failed", "account": "account_hedge"}) == (
        newest_first(hedge)
    )


def test_it_keeps_paging_in_place_while_new_orders_arrive(checked_api, accounts):
    orders = [make_order(created_at=T0 + timedelta(seconds=n)) for n in range(6)]

    first = checked_api.get(URL, {"limit": 3}).json()
    make_order(created_at=T0 + timedelta(days=1))
    second = checked_api.get(URL, {"limit": 3, "cursor": first["next_cursor"]}).json()

    assert [o["request_id"] for o in first["orders"] + second["orders"]] == newest_first(orders)
    assert second["has_more"] is False


@pytest.mark.sqlite_only  # reads SQLite's EXPLAIN QUERY PLAN: the SQLite leg of make test runs it
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"account": "account_main"},
        {"status": "unknown"},
        {"account": "account_main", "status": "unknown"},
        {"account": "account_main", "status": "unknown,expired"},
        {"strategy": "manual", "status": "failed"},
        {"symbol": "BTC/USDT:USDT", "status": "failed"},
        {"since": "2026-02-21", "until": "2026-02-22"},
        {"q": "ORD_T"},
    ],
)
def test_it_reads_each_page_through_an_index_without_sorting_the_history(api, accounts, params):
    make_order(created_at=T0, status=OrderStatus.UNKNOWN)
    cursor = api.get(URL, {**params, "limit": 1}).json()["next_cursor"]

    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL, {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}).status_code == 200

    for sql, plan in query_plans(queries.captured_queries):
        for line in plan:
            assert not (line.startswith("SCAN orders_order") and "INDEX" not in line), (sql, plan)  # no table scan
            if "IN (SELECT" not in sql:  # a search sorts only the ids its term matched
                assert "TEMP B-TREE" not in line, (sql, plan)
            if '"pk"' in sql and "status" in params and line.startswith("SEARCH orders_order"):
                # A status filter is a seek, not a check on every order of the account's history.
                assert "status=?" in line, (sql, plan)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"status": "done"}, "status"),
        ({"status": "failed,nope"}, "status"),
        ({"side": "long"}, "side"),
        ({"order_type": "stop"}, "order_type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"q": "ORD 1; drop"}, "q"),
        ({"q": "x" * 65}, "q"),
        ({"account": "a" * 65}, "account"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),  # base64 of []
        ({"account": "main\x00"}, "account"),
        ({"stauts": "failed"}, "stauts"),
    ],
)
def test_it_answers_bad_parameters_with_400_and_a_message_for_each(checked_api, accounts, params, field):
    make_order(created_at=T0)

    response = checked_api.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"] == "Invalid query"
    assert list(body["errors"]) == [field]
    assert body["errors"][field] and all(isinstance(message, str) for message in body["errors"][field])


def test_it_reports_every_bad_parameter_at_once(checked_api, accounts):
    response = checked_api.get(URL, {"limit": "x", "side": "up", "colour": "red"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"limit", "side", "colour"}


@pytest.mark.parametrize(
    ("status", "exchange_state", "actions"),
    [
        (OrderStatus.QUEUED, "", ["cancel"]),
        (OrderStatus.PROCESSING, "", []),
        (OrderStatus.SUCCESS, "open", ["cancel"]),
        (OrderStatus.SUCCESS, "partially_filled", ["cancel"]),
        (OrderStatus.SUCCESS, "filled", []),
        (OrderStatus.FAILED, "", ["retry"]),
        (OrderStatus.EXPIRED, "", ["retry"]),
        (OrderStatus.CANCELLED, "", []),
    ],
)
def test_it_says_what_each_order_allows(checked_api, accounts, status, exchange_state, actions):
    order = make_order(created_at=T0, status=status, exchange_state=exchange_state)

    assert checked_api.get(f"{URL}/{order.request_id}").json()["order"]["actions"] == actions
    assert checked_api.get(URL).json()["orders"][0]["actions"] == actions


def test_it_refuses_anonymous_requests(client, accounts):
    make_order(created_at=T0, request_id="ORD_SECRET")

    for url in (URL, f"{URL}/ORD_SECRET"):
        response = client.get(url)
        assert response.status_code in (401, 403)
        assert response.json()["success"] is False
        assert "ORD_SECRET" not in response.content.decode()


def test_it_counts_an_id_search_within_the_users_accounts_only(accounts, monkeypatch):
    """ "More than N orders match" must not tell a limited user how busy other accounts are."""
    from rest_framework.test import APIClient

    from tests.conftest import user_with_role

    monkeypatch.setattr(selectors.history, "SEARCH_MAX_MATCHES", 3)
    for n in range(4):
        make_order(created_at=T0, account="account_poit_main", request_id=f"ORD_LEAK{n}")
    own = make_order(created_at=T0, account="account_main", request_id="ORD_LEAK9")
    limited, everyone = APIClient(), APIClient()
    limited.force_authenticate(user_with_role("lim", "viewer", accounts=["account_main"]))
    everyone.force_authenticate(user_with_role("all", "viewer"))

    mine = limited.get(URL, {"q": "ORD_LEAK"})
    refused = everyone.get(URL, {"q": "ORD_LEAK"})

    assert mine.status_code == 200 and [o["request_id"] for o in mine.json()["orders"]] == [own.request_id]
    assert refused.status_code == 400 and "More than 3 orders match" in refused.json()["errors"]["q"][0]
