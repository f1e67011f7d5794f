"""The OKX adapter through the real ccxt client against the local OKX fake."""

from decimal import Decimal

import pytest

from orders.exchanges.base import AccountError, AmbiguousError, FinalError, OrderTicket, RetryableError
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

    placed = exchange.place_order(ticket())
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

    exchange.place_order(ticket(amount=Decimal("0.37"), amount_unit="contracts"))

    [order] = fake.orders(KEY)
    assert Decimal(order["sz"]) == Decimal("0.3")


def test_it_refuses_an_amount_below_the_minimum_without_sending(fake, creds):
    exchange = make_exchange(fake)

    with pytest.raises(FinalError, match="minimum of 0.1 contracts"):
        exchange.place_order(ticket(amount=Decimal("0.0005")))
    assert fake.order_requests == []


def test_it_places_spot_orders_in_cash_mode_in_base_currency(fake, creds):
    exchange = make_exchange(fake)

    exchange.place_order(ticket(symbol="BTC/USDT", leverage=None, margin_mode="cash", amount=Decimal("0.01")))

    [order] = fake.orders(KEY)
    assert (order["instId"], order["tdMode"], Decimal(order["sz"])) == ("BTC-USDT", "cash", Decimal("0.01"))


def test_it_sets_leverage_only_when_it_changes(fake, creds):
    exchange = make_exchange(fake)

    exchange.place_order(ticket(1))
    exchange.place_order(ticket(2))
    exchange.place_order(ticket(3, leverage=20))

    assert fake.leverage_calls == 2
    assert fake.get_leverage(KEY, "BTC-USDT-SWAP", "cross") == "20"


def test_it_sends_the_position_side_in_long_short_mode(fake, creds):
    fake.set_pos_mode(KEY, "long_short_mode")
    exchange = make_exchange(fake, options={"position_mode": "long_short"})

    exchange.place_order(ticket(1, side="buy"))
    exchange.place_order(ticket(2, side="sell", reduce_only=True))

    first, second = fake.orders(KEY)
    assert first["posSide"] == "long"
    assert second["posSide"] == "long"  # selling to reduce a long


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limit", RetryableError, "50011"),
        ("maintenance", RetryableError, "50001"),
        ("busy", RetryableError, "50013"),
        ("insufficient_funds", FinalError, "51008"),
        ("timeout_code", AmbiguousError, "50004"),
    ],
)
def test_it_classifies_exchange_errors_by_their_okx_code(fake, creds, kind, error, code):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject(kind, path_suffix="trade/batch-orders", times=1)

    with pytest.raises(error) as raised:
        exchange.place_order(ticket())

    assert raised.value.code == code
    assert raised.value.message


def test_it_treats_a_dropped_reply_as_ambiguous_and_finds_the_order(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("drop_after_record", path_suffix="trade/batch-orders", times=1)

    with pytest.raises(AmbiguousError):
        exchange.place_order(ticket())
    found = exchange.fetch_order(ticket())

    assert found is not None and found.order_id == fake.orders(KEY)[0]["ordId"]


def test_it_treats_a_reply_held_past_the_timeout_as_ambiguous(fake, creds):
    exchange = make_exchange(fake)
    exchange.load_markets()
    fake.inject("hold", path_suffix="trade/batch-orders", times=1, seconds=2)

    with pytest.raises(AmbiguousError, match="No reply"):
        exchange.place_order(ticket())
    assert len(fake.orders(KEY)) == 1


def test_it_answers_none_for_an_order_the_exchange_does_not_have(fake, creds):
    assert make_exchange(fake).fetch_order(ticket()) is None


def test_it_calls_a_duplicate_client_order_id_ambiguous(fake, creds):
    exchange = make_exchange(fake)
    exchange.place_order(ticket())

    with pytest.raises(AmbiguousError) as raised:
        exchange.place_order(ticket())
    assert raised.value.code == "51016"
    assert len(fake.orders(KEY)) == 1


def test_it_retries_when_the_exchange_cannot_be_reached(creds):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True) as fake:
        exchange = make_exchange(fake)
    # the server is stopped: nothing listens on its port any more
    with pytest.raises(RetryableError) as raised:
        exchange.place_order(ticket())
    assert raised.value.code == "connect"


def test_it_fails_wrong_credentials_as_an_account_error_without_leaking_them(fake, monkeypatch):
    monkeypatch.setenv("T_OKX_KEY", KEY)
    monkeypatch.setenv("T_OKX_SECRET", "wrong-secret-VERYSECRET")
    monkeypatch.setenv("T_OKX_PASS", PASSPHRASE)
    exchange = make_exchange(fake)

    with pytest.raises(AccountError) as raised:
        exchange.place_order(ticket())

    text = f"{raised.value} {raised.value.message} {raised.value.code}"
    assert "okx_demo" in text
    assert "VERYSECRET" not in text and KEY not in text
    assert fake.orders(KEY) == []


def test_it_sends_the_demo_trading_header_only_for_demo_accounts(creds):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=False) as live_fake:
        make_exchange(live_fake, mode="live").place_order(ticket())
        assert len(live_fake.orders(KEY)) == 1
        with pytest.raises(AccountError):
            make_exchange(live_fake, mode="demo").place_order(ticket(2))


def test_it_cancels_a_resting_limit_order(fake, creds):
    exchange = make_exchange(fake)
    placed = exchange.place_order(ticket(order_type="limit", price=Decimal("60000")))
    assert exchange.fetch_order(ticket()).state == "open"

    cancelled = exchange.cancel_order(ticket(), placed.order_id)

    assert cancelled.state == "cancelled"
    assert fake.orders(KEY)[0]["state"] == "canceled"
