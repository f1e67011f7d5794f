"""GET /api/order-scheduler/stats."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import OrderStatus
from orders.selectors import day_bounds
from tests.helpers import assert_matches_contract, contract, make_order, query_plans

URL = "/api/order-scheduler/stats"
pytestmark = pytest.mark.django_db
S, F = OrderStatus.SUCCESS, OrderStatus.FAILED


def local_midnight() -> datetime:
    return day_bounds(timezone.localdate())[0]


def stats(client, **params) -> dict:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()["stats"]


def seed_example_orders() -> None:
    """Today and yesterday exactly as in the seed's example response."""
    today = local_midnight() + timedelta(hours=1)
    rows = [
        ("account_main", "bottom_signal_long", "BTC/USDT:USDT", S),
        ("account_main", "bottom_signal_long", "BTC/USDT:USDT", S),
        ("account_main", "bottom_signal_long", "BTC/USDT:USDT", S),
        ("account_main", "manual", "BTC/USDT:USDT", S),
        ("account_main", "manual", "ETH/USDT:USDT", S),
        ("account_poit_main", "bottom_signal_long", "BTC/USDT:USDT", S),
        ("account_poit_main", "bottom_signal_long", "BTC/USDT:USDT", S),
        ("account_poit_main", "bottom_signal_long", "ETH/USDT:USDT", S),
        ("account_poit_main", "bottom_signal_long", "ETH/USDT:USDT", S),
        ("account_poit_main", "bottom_signal_long", "ETH/USDT:USDT", F),
    ]
    for n, (account, strategy, symbol, status) in enumerate(rows):
        make_order(
            created_at=today + timedelta(minutes=n),
            account=account,
            strategy_name=strategy,
            symbol=symbol,
            status=status,
        )
    # Yesterday's orders use other names: the by_* groups must count today only.
    yesterday = local_midnight() - timedelta(hours=12)
    for n in range(15):
        make_order(
            created_at=yesterday + timedelta(minutes=n),
            status=F if n == 0 else S,
            account="account_hedge",
            strategy_name="grid_eth",
            symbol="SOL/USDT:USDT",
        )


def test_it_reproduces_the_seed_example(checked_api, accounts):
    seed_example_orders()

    response = checked_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    expected = contract("stats")
    assert_matches_contract(body, expected)
    live = body["stats"]
    for section in ("today", "yesterday"):
        assert {key: live[section][key] for key in expected["stats"][section]} == expected["stats"][section]
    for group in ("by_account", "by_strategy", "by_symbol"):
        assert set(live[group]) == set(expected["stats"][group]), group
        for key, counts in expected["stats"][group].items():
            assert {name: live[group][key][name] for name in counts} == counts, (group, key)


def test_it_counts_success_rate_over_decided_orders_only(checked_api, accounts):
    start = local_midnight() + timedelta(minutes=5)
    for status, count in (
        (S, 3),
        (F, 1),
        (OrderStatus.CANCELLED, 5),
        (OrderStatus.EXPIRED, 2),
        (OrderStatus.QUEUED, 4),
    ):
        for _ in range(count):
            make_order(created_at=start, status=status)

    today = stats(checked_api)["today"]

    assert today == {
        "total": 15, "success": 3, "failed": 1, "success_rate": 75.0, "cancelled": 5, "expired": 2, "pending": 4,
    }  # fmt: skip


def test_it_reports_a_zero_success_rate_when_nothing_was_decided(checked_api, accounts):
    make_order(created_at=local_midnight(), status=OrderStatus.QUEUED)

    body = stats(checked_api)

    assert body["today"]["success_rate"] == 0 and body["yesterday"]["success_rate"] == 0
    assert body["by_account"]["account_main"] == {"total": 1, "success": 0, "failed": 0, "success_rate": 0}


def test_it_splits_days_and_hours_at_local_midnight_of_the_configured_time_zone(checked_api, accounts, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    midnight = local_midnight()
    make_order(created_at=midnight - timedelta(microseconds=1), status=F)
    make_order(created_at=midnight)
    make_order(created_at=midnight + timedelta(minutes=59, seconds=59, microseconds=999999))
    make_order(created_at=midnight + timedelta(hours=1))

    body = stats(checked_api)

    assert (body["today"]["total"], body["yesterday"]["total"]) == (3, 1)
    assert body["yesterday"]["failed"] == 1 and body["today"]["failed"] == 0
    today, yesterday = body["hourly"]["today"], body["hourly"]["yesterday"]
    assert [hour["hour"] for hour in today] == list(range(24)) == [hour["hour"] for hour in yesterday]
    assert [hour["total"] for hour in today[:3]] == [2, 1, 0]
    assert yesterday[23] == {
        "hour": 23, "start": (midnight - timedelta(hours=1)).isoformat(), "total": 1, "success": 0, "failed": 1,
    }  # fmt: skip
    assert today[0]["start"] == midnight.isoformat() and today[0]["start"].endswith("+08:00")
    assert sum(hour["total"] for hour in today) == 3
    assert (body["date"], body["time_zone"]) == (timezone.localdate().isoformat(), "Asia/Shanghai")
    assert set(body["by_account"]) == {"account_main"} and body["by_account"]["account_main"]["total"] == 3


def test_it_reports_queue_wait_and_execution_percentiles_for_today(checked_api, accounts):
    start = local_midnight() + timedelta(hours=2)
    for n in range(1, 21):
        make_order(created_at=start + timedelta(seconds=n), wait_ms=10 * n, run_ms=100 * n)
    make_order(created_at=start + timedelta(seconds=30), status=OrderStatus.PROCESSING, wait_ms=5)
    make_order(created_at=start + timedelta(seconds=31), status=OrderStatus.QUEUED)
    make_order(created_at=start + timedelta(seconds=32), status=OrderStatus.EXPIRED)
    make_order(created_at=start - timedelta(days=1), wait_ms=99999, run_ms=99999)  # yesterday

    durations = stats(checked_api)["durations"]

    # Nearest rank: p is the value at rank ceil(p/100 * count) in ascending order.
    assert durations["queue_wait_ms"] == {"count": 21, "p50": 100, "p95": 190, "max": 200}
    assert durations["execution_ms"] == {"count": 20, "p50": 1000, "p95": 1900, "max": 2000}


def test_it_takes_duration_figures_from_the_latest_started_orders(checked_api, accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "DURATION_SAMPLE": 4}
    start = local_midnight() + timedelta(hours=2)
    for n in range(1, 11):
        make_order(created_at=start + timedelta(seconds=n), wait_ms=n, run_ms=1000 * n)
    make_order(created_at=start + timedelta(seconds=20), status=OrderStatus.QUEUED)

    durations = stats(checked_api)["durations"]

    assert durations["sample_limit"] == 4
    assert durations["queue_wait_ms"] == {"count": 4, "p50": 8, "p95": 10, "max": 10}
    assert durations["execution_ms"] == {"count": 4, "p50": 8000, "p95": 10000, "max": 10000}


def test_it_reports_no_durations_on_a_day_without_started_orders(checked_api, accounts):
    make_order(created_at=local_midnight(), status=OrderStatus.QUEUED)

    durations = stats(checked_api)["durations"]

    empty = {"count": 0, "p50": None, "p95": None, "max": None}
    assert durations["queue_wait_ms"] == empty and durations["execution_ms"] == empty


def test_it_narrows_every_figure_to_an_account_and_a_strategy(checked_api, accounts):
    start = local_midnight() + timedelta(hours=3)
    make_order(created_at=start, account="account_hedge", strategy_name="grid_btc", run_ms=500)
    make_order(created_at=start, account="account_hedge", strategy_name="manual", status=F, run_ms=700)
    make_order(created_at=start, account="account_main", strategy_name="grid_btc", run_ms=900)
    make_order(created_at=start - timedelta(days=1), account="account_hedge", strategy_name="grid_btc")

    hedge = stats(checked_api, account="account_hedge")
    grid = stats(checked_api, strategy="grid_btc")
    both = stats(checked_api, account="account_hedge", strategy="grid_btc")

    assert (hedge["today"]["total"], hedge["today"]["failed"], hedge["yesterday"]["total"]) == (2, 1, 1)
    assert set(hedge["by_account"]) == {"account_hedge"} and set(hedge["by_strategy"]) == {"grid_btc", "manual"}
    assert hedge["durations"]["execution_ms"]["max"] == 700
    assert hedge["hourly"]["today"][3]["total"] == 2 and hedge["filters"] == {
        "account": "account_hedge",
        "strategy": None,
    }
    assert (grid["today"]["total"], grid["yesterday"]["total"]) == (2, 1)
    assert set(grid["by_account"]) == {"account_hedge", "account_main"} and set(grid["by_strategy"]) == {"grid_btc"}
    assert grid["durations"]["execution_ms"]["max"] == 900
    assert (both["today"]["total"], both["by_symbol"]["BTC/USDT:USDT"]["total"]) == (1, 1)
    assert stats(checked_api, account="nobody")["today"]["total"] == 0


@pytest.mark.sqlite_only  # reads SQLite's EXPLAIN QUERY PLAN: the SQLite leg of make test runs it
def test_it_counts_from_indexes_alone_without_sorting(api, accounts):
    seed_example_orders()

    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL).status_code == 200

    plans = query_plans(queries.captured_queries)
    counting = [(sql, plan) for sql, plan in plans if "COUNT(*)" in sql]
    assert len(counting) == 4  # the hourly buckets, by_account, by_strategy, by_symbol
    for sql, plan in counting:
        searches = [line for line in plan if line.startswith(("SEARCH", "SCAN"))]
        assert searches and all("USING COVERING INDEX" in line for line in searches), (sql, plan)
        assert not any("TEMP B-TREE" in line for line in plan), (sql, plan)


@pytest.mark.parametrize(
    "params, field",
    [({"account": "a" * 65}, "account"), ({"strategy": "s" * 65}, "strategy"), ({"day": "today"}, "day")],
)
def test_it_answers_bad_parameters_with_400_and_a_message(checked_api, accounts, params, field):
    response = checked_api.get(URL, params)

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and list(body["errors"]) == [field] and body["errors"][field][0]


def test_it_refuses_anonymous_requests(client, accounts):
    response = client.get(URL)

    assert response.status_code in (401, 403)
    assert response.json()["success"] is False


@pytest.mark.django_db
def test_it_throttles_statistics_per_user_with_retry_after(api, accounts, monkeypatch):
    from orders.api.permissions import ScopedThrottle

    monkeypatch.setattr(ScopedThrottle, "THROTTLE_RATES", {"stats": "2/min"})

    answers = [api.get(URL) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0 and answers[2].json()["success"] is False
