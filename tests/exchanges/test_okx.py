"""The OKX adapter through the real ccxt client against the local OKX fake."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from orders.exchanges.base import (
    AccountError,
    AmbiguousError,
    Execution,
    FinalError,
    NotPlacedError,
    OrderTicket,
    RetryableError,
)
from orders.exchanges.okx import OkxExchange
from orders.models import Account
from tests.fakes.okx import FakeOKX

KEY, SECRET, PASSPHRASE = "okx-key-1", "okx-secret-1-VERYSECRET", "okx-pass-1-VERYSECRET"


@pytest.fixture
def fake():
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True) as server:
        yield server


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("T_OKX_KEY", KEY)
    monkeypatch.setenv("T_OKX_SECRET", SECRET)
    monkeypatch.setenv("T_OKX_PASS", PASSPHRASE)


def make_exchange(fake, *, mode="demo", options=None, **fields) -> OkxExchange:
    account = Account(
        id="okx_demo",
        mode=mode,
        api_key_env="T_OKX_KEY",
        secret_env="T_OKX_SECRET",
        passphrase_env="T_OKX_PASS",
        base_url=fake.base_url,
        options={"timeout_ms": 1000, **(options or {})},
        **fields,
    )
    return OkxExchange(account)


def place(exchange, order, *, budget_ms=5000):
    """Place with a deadline `budget_ms` ahead on the exchange's clock."""
    return exchange.place_order(order, deadline_ms=exchange.exchange_time_ms() + budget_ms)


def ticket(n=1, **overrides) -> OrderTicket:
    fields = {
        "client_order_id": f"sctest{n:026d}"[:32],
        "symbol": "BTC/USDT:USDT",
        "side": "buy",
        "order_type": "market",
        "amount": Decimal("0.001"),
        "amount_unit": "base",
        "price": None,
        "leverage": 10,
        "margin_mode": "cross",
        "reduce_only": False,
    }
    fields.update(overrides)
    return OrderTicket(**fields)


def test_it_places_a_swap_market_order_in_contracts_with_the_client_order_id(fake, creds):
    exchange = make_exchange(fake)

    placed = place(exchange, ticket())
    details = exchange.fetch_order(ticket())

    [order] = fake.orders(KEY)
    assert order["clOrdId"] == ticket().client_order_id
    assert order["instId"] == "BTC-USDT-SWAP"
    assert Decimal(order["sz"]) == Decimal("0.1")  # 0.001 BTC = 0.1 contracts of 0.01 BTC
    assert order["tdMode"] == "cross"
    assert (placed.order_id, placed.state) == (order["ordId"], "submitted")  # fills come from the look-up
    assert details.order_id == order["ordId"]
    assert details.state == "filled"
    assert details.filled_amount == Decimal("0.001")  # reported back in the order's unit
    assert details.average_price == Decimal("65000")
    assert details.fee is not None and details.fee_currency == "USDT"


def test_it_accepts_contract_amounts_and_rounds_down_to_the_lot(fake, creds):
    exchange = make_exchange(fake)

    place(exchange, ticket(amount=Decimal("0.37"), amount_unit="contracts"))

    [order] = fake.orders(KEY)
    assert Decimal(order["sz"]) == Decimal("0.3")


def test_it_refuses_an_amount_below_the_minimum_without_sending(fake, creds):
    exchange = make_exchange(fake)

    with pytest.raises(FinalError, match="minimum of 0.1 contracts"):
        place(exchange, ticket(amount=Decimal("0.0005")))
    assert fake.order_requests == []


def test_it_places_spot_orders_in_cash_mode_in_base_currency(fake, creds):
    exchange = make_exchange(fake)

    place(exchange, ticket(symbol="BTC/USDT", leverage=None, margin_mode="cash", amount=Decimal("0.01")))

    [order] = fake.orders(KEY)
    assert (order["instId"], order["tdMode"], Decimal(order["sz"])) == ("BTC-USDT", "cash", Decimal("0.01"))


def test_it_sets_leverage_only_when_it_changes(fake, creds):
    exchange = make_exchange(fake)

    place(exchange, ticket(1))
    place(exchange, ticket(2))
    place(exchange, ticket(3, leverage=20))

    assert fake.leverage_calls == 2
    assert fake.get_leverage(KEY, "BTC-USDT-SWAP", "cross") == "20"


def test_it_sends_the_position_side_in_long_short_mode(fake, creds):
    fake.set_pos_mode(KEY, "long_short_mode")
    exchange = make_exchange(fake, options={"position_mode": "long_short"})

    place(exchange, ticket(1, side="buy"))
    place(exchange, ticket(2, side="sell", reduce_only=True))

    first, second = fake.orders(KEY)
    assert first["posSide"] == "long"
    assert second["posSide"] == "long"  # selling to reduce a long


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limit", NotPlacedError, "50011"),
        ("maintenance", NotPlacedError, "50001"),
        ("busy", AmbiguousError, "50013"),
        ("insufficient_funds", FinalError, "51008"),
        ("timeout_code", AmbiguousError, "50004"),
    ],
)
def test_it_classifies_exchange_errors_by_their_okx_code(fake, creds, kind, error, code):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject(kind, path_suffix="trade/batch-orders", times=1)

    with pytest.raises(error) as raised:
        place(exchange, ticket())

    assert raised.value.code == code
    assert raised.value.message


def test_it_treats_a_dropped_reply_as_ambiguous_and_finds_the_order(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("drop_after_record", path_suffix="trade/batch-orders", times=1)

    with pytest.raises(AmbiguousError):
        place(exchange, ticket())
    found = exchange.fetch_order(ticket())

    assert found is not None and found.order_id == fake.orders(KEY)[0]["ordId"]


def test_it_treats_a_reply_held_past_the_timeout_as_ambiguous(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("hold", path_suffix="trade/batch-orders", times=1, seconds=2)

    with pytest.raises(AmbiguousError, match="No reply"):
        place(exchange, ticket())
    assert len(fake.orders(KEY)) == 1


def test_it_answers_none_for_an_order_the_exchange_does_not_have(fake, creds):
    assert make_exchange(fake).fetch_order(ticket()) is None


def test_it_calls_a_duplicate_client_order_id_ambiguous(fake, creds):
    exchange = make_exchange(fake)
    resting = ticket(order_type="limit", price=Decimal("60000"))
    place(exchange, resting)

    with pytest.raises(AmbiguousError) as raised:
        place(exchange, resting)
    assert raised.value.code == "51016"
    assert len(fake.orders(KEY)) == 1


def test_it_retries_when_the_exchange_cannot_be_reached(creds):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True) as fake:
        exchange = make_exchange(fake)
    # the server is stopped: nothing listens on its port any more
    with pytest.raises(RetryableError) as raised:
        place(exchange, ticket())
    assert raised.value.code == "connect"


def test_it_fails_wrong_credentials_as_an_account_error_without_leaking_them(fake, monkeypatch):
    monkeypatch.setenv("T_OKX_KEY", KEY)
    monkeypatch.setenv("T_OKX_SECRET", "wrong-secret-VERYSECRET")
    monkeypatch.setenv("T_OKX_PASS", PASSPHRASE)
    exchange = make_exchange(fake)

    with pytest.raises(AccountError) as raised:
        place(exchange, ticket())

    text = f"{raised.value} {raised.value.message} {raised.value.code}"
    assert "okx_demo" in text
    assert "VERYSECRET" not in text and KEY not in text
    assert fake.orders(KEY) == []


def test_it_sends_the_demo_trading_header_only_for_demo_accounts(creds):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=False) as live_fake:
        place(make_exchange(live_fake, mode="live"), ticket())
        assert len(live_fake.orders(KEY)) == 1
        with pytest.raises(AccountError):
            place(make_exchange(live_fake, mode="demo"), ticket(2))


def test_it_cancels_a_resting_limit_order(fake, creds):
    exchange = make_exchange(fake)
    placed = place(exchange, ticket(order_type="limit", price=Decimal("60000")))
    assert exchange.fetch_order(ticket()).state == "open"

    cancelled = exchange.cancel_order(ticket(), placed.order_id)

    assert cancelled.state == "cancelled"
    assert fake.orders(KEY)[0]["state"] == "canceled"


# --- deadlines (OKX's expTime) ------------------------------------------------------------


def test_it_sends_the_deadline_as_exp_time_on_placements_and_the_signature_still_passes(fake, creds):
    exchange = make_exchange(fake)
    deadline = exchange.exchange_time_ms() + 3000

    exchange.place_order(ticket(), deadline_ms=deadline)
    exchange.fetch_order(ticket())

    [request] = fake.order_requests
    assert request["expTime"] == deadline
    assert "expTime" not in request["orders"][0]  # a header, never in the body
    assert request["outcome"] == "accepted"  # a bad signature would be auth:50113
    assert fake.order_count(ticket().client_order_id) == 1


def test_it_says_not_placed_when_the_deadline_had_passed_on_arrival_and_measures_the_clock_again(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.set_clock_offset(20_000)  # OKX's clock jumps ahead of the offset we measured

    with pytest.raises(NotPlacedError) as raised:
        place(exchange, ticket(), budget_ms=3000)

    assert isinstance(raised.value, RetryableError) and raised.value.code == "50036"
    assert fake.orders(KEY) == []
    assert fake.requests_log[-1]["path"] == "public/time"  # measured again at once
    assert abs(exchange.exchange_time_ms() - fake.now_ms()) < 1000
    place(exchange, ticket(), budget_ms=3000)  # the next deadline is on OKX's clock
    assert fake.order_count(ticket().client_order_id) == 1


def test_it_says_not_placed_when_the_deadline_passed_before_processing(fake, creds):
    exchange = make_exchange(fake, options={"timeout_ms": 5000})
    exchange.load_markets()
    fake.inject("hold_before", path_suffix="trade/batch-orders", times=1, seconds=60)

    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(place, exchange, ticket(), budget_ms=1000)
        [held] = fake.wait_for_request(state="held")
        assert fake.wait_for(lambda: fake.now_ms() > held["expTime"])
        fake.release_held()  # OKX takes the request up after its deadline
        with pytest.raises(NotPlacedError) as raised:
            sent.result(timeout=5)

    assert raised.value.code == "50037"
    assert fake.orders(KEY) == []
    assert fake.order_requests[-1]["outcome"] == "expired:50037"


def test_it_calls_a_request_held_past_the_timeout_ambiguous_and_finds_it_once_processed(fake, creds):
    exchange = make_exchange(fake)  # 1 s timeout
    exchange.load_markets()
    fake.inject("hold_before", path_suffix="trade/batch-orders", times=1, seconds=60)

    with pytest.raises(AmbiguousError) as raised:
        place(exchange, ticket(), budget_ms=10_000)
    assert raised.value.code == "timeout"
    assert exchange.fetch_order(ticket()) is None  # OKX has not processed it yet
    assert fake.in_flight_orders(KEY) == 1

    fake.release_held()
    fake.wait_for_request(outcome="accepted")

    assert exchange.fetch_order(ticket()).state == "filled"


def test_it_calls_50004_ambiguous_and_finds_the_order_processed_later(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("code_then_process", path_suffix="trade/batch-orders", times=1, seconds=60)

    with pytest.raises(AmbiguousError) as raised:
        place(exchange, ticket())
    assert raised.value.code == "50004"
    assert exchange.fetch_order(ticket()) is None

    fake.release_held()
    fake.wait_for_request(outcome="accepted")

    found = exchange.fetch_order(ticket())
    assert found is not None and found.order_id == fake.get_order(ticket().client_order_id)["ordId"]


@pytest.mark.parametrize("code", ["50026", "51149", "51054", "59999"])
def test_it_calls_answers_that_may_have_been_processed_ambiguous(fake, creds, code):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("code", code=code, path_suffix="trade/batch-orders", times=1)

    with pytest.raises(AmbiguousError) as raised:
        place(exchange, ticket())

    assert raised.value.code == code


@pytest.mark.parametrize("code", ["50011", "50061", "50001"])
def test_it_says_not_placed_for_refusals_decided_before_processing(fake, creds, code):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("code", code=code, path_suffix="trade/batch-orders", times=1)

    with pytest.raises(NotPlacedError) as raised:
        place(exchange, ticket())

    assert raised.value.code == code
    assert fake.orders(KEY) == []


def test_a_look_up_on_a_busy_exchange_is_only_retryable(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("busy", path_suffix="trade/order", method="GET", times=1)

    with pytest.raises(RetryableError) as raised:
        exchange.fetch_order(ticket())

    assert raised.value.code == "50013" and not isinstance(raised.value, NotPlacedError)


def test_a_repeated_client_order_id_after_a_fill_places_a_second_order(fake, creds):
    # OKX refuses a clOrdId only while its order is pending: the service must never
    # re-send an order that may have filled, or it fills twice.
    exchange = make_exchange(fake)

    first = place(exchange, ticket())
    second = place(exchange, ticket())

    assert first.order_id != second.order_id
    assert fake.order_count(ticket().client_order_id) == 2
    assert exchange.fetch_order(ticket()).order_id == second.order_id  # the latest
    assert exchange.fetch_order_by_id(ticket(), first.order_id).order_id == first.order_id


def test_it_looks_an_order_up_by_the_exchanges_id(fake, creds):
    exchange = make_exchange(fake)
    placed = place(exchange, ticket(order_type="limit", price=Decimal("60000")))

    found = exchange.fetch_order_by_id(ticket(), placed.order_id)

    assert (found.order_id, found.state) == (placed.order_id, "open")
    assert exchange.fetch_order_by_id(ticket(), "701999999999999999") is None


def test_it_reports_a_market_order_the_exchange_cancelled_unfilled(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("market_canceled", path_suffix="trade/batch-orders", times=1)

    place(exchange, ticket())

    found = exchange.fetch_order(ticket())
    assert found.state == "cancelled" and found.filled_amount == 0


def test_its_clock_tracks_an_exchange_whose_clock_is_skewed(creds):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True, clock_offset_ms=-90_000) as skewed:
        exchange = make_exchange(skewed)

        assert abs(exchange.exchange_time_ms() - skewed.now_ms()) < 1000
        place(exchange, ticket(), budget_ms=3000)  # signed and deadlined on OKX's clock

        assert skewed.order_requests[-1]["outcome"] == "accepted"


def test_it_measures_the_clock_again_after_a_timestamp_refusal(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.set_clock_offset(60_000)  # beyond OKX's 30 s signature window

    with pytest.raises(NotPlacedError) as raised:
        exchange.fetch_order(ticket())
    assert raised.value.code == "50102"

    place(exchange, ticket(), budget_ms=3000)
    assert fake.order_requests[-1]["outcome"] == "accepted"


def test_it_reads_back_pages_of_order_history_for_many_orders(fake, creds):
    exchange = make_exchange(fake)
    tickets = [ticket(n, leverage=None) for n in range(1, 231)]
    for start in range(0, len(tickets), 20):
        assert all(isinstance(r, Execution) for r in exchange.place_orders(
            tickets[start : start + 20], deadline_ms=exchange.exchange_time_ms() + 5000))  # fmt: skip
    fake.reset_stats()

    found = exchange.fetch_orders(tickets[:100])  # the oldest 100 of 230: three pages back

    assert set(found) == {t.client_order_id for t in tickets[:100]}
    lookups = [r for r in fake.requests_log if r["path"] == "trade/order"]
    history = [r for r in fake.requests_log if r["path"] == "trade/orders-history"]
    assert lookups == [] and len(history) <= 4
