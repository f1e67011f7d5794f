"""Tests of the fake OKX server, driven by the real ccxt okx client.

Run: .venv/bin/python -m pytest tests/fakes/test_okx_fake.py -p no:django -q
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import ccxt
import pytest

from .okx import FakeOKX

KEY, SECRET, PASS = "key-a", "secret-a", "Pass-a1!"
KEY_B, SECRET_B, PASS_B = "key-b", "secret-b", "Pass-b2!"
SWAP = "BTC/USDT:USDT"


def make_client(fake: FakeOKX, key=KEY, secret=SECRET, password=PASS, *, sandbox=True, timeout=3000) -> ccxt.okx:
    ex = ccxt.okx(
        {
            "apiKey": key,
            "secret": secret,
            "password": password,
            "timeout": timeout,
            "enableRateLimit": False,
            "options": {"fetchMarkets": {"types": ["spot", "swap"]}},
        }
    )
    ex.urls["api"]["rest"] = fake.base_url
    ex.urls["test"]["rest"] = fake.base_url
    if sandbox:
        ex.set_sandbox_mode(True)
    return ex


@pytest.fixture
def fake():
    with FakeOKX(accounts={KEY: (SECRET, PASS), KEY_B: (SECRET_B, PASS_B)}, demo=True) as f:
        yield f
        assert f.errors == []  # the fake itself never crashed


@pytest.fixture
def ex(fake):
    client = make_client(fake)
    client.load_markets()
    return client


def signed_request(
    fake,
    method,
    path,
    body="",
    *,
    key=KEY,
    secret=SECRET,
    password=PASS,
    demo=True,
    ts=None,
    sign_body=None,
):
    """Hand-made signed request (independent of ccxt). Returns (http_status, json)."""
    ts = ts or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    prehash = ts + method + path + (body if sign_body is None else sign_body)
    sign = base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest())
    headers = {
        "OK-ACCESS-KEY": key,
        "OK-ACCESS-SIGN": sign.decode(),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": password,
        "Content-Type": "application/json",
    }
    if demo:
        headers["x-simulated-trading"] = "1"
    req = urllib.request.Request(
        fake.base_url + path,
        data=body.encode() if body else None,
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ------------------------------------------------------------------------------ markets


def test_load_markets_spot_and_swap_in_sandbox(fake, ex):
    assert {
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "SOL/USDT:USDT",
    } <= set(ex.markets)
    swap = ex.market(SWAP)
    assert swap["id"] == "BTC-USDT-SWAP" and swap["swap"] and swap["linear"]
    assert swap["contractSize"] == 0.01
    assert swap["precision"]["amount"] == 0.1 and swap["limits"]["amount"]["min"] == 0.1
    spot = ex.market("BTC/USDT")
    assert spot["spot"] and spot["precision"]["amount"] == 1e-8
    assert spot["limits"]["amount"]["min"] == 0.00001 and spot["precision"]["price"] == 0.1
    # in sandbox mode ccxt skips the signed currencies call
    paths = [(r["path"], r["query"].get("instType")) for r in fake.requests_log]
    assert paths == [("public/instruments", "SPOT"), ("public/instruments", "SWAP")]


def test_load_markets_live_calls_signed_currencies_first():
    with FakeOKX(accounts={KEY: (SECRET, PASS)}, demo=False) as fake:
        ex = make_client(fake, sandbox=False)
        ex.load_markets()
        log = fake.requests_log
        assert [r["path"] for r in log] == [
            "asset/currencies",
            "public/instruments",
            "public/instruments",
        ]
        assert log[0]["apiKey"] == KEY and log[0]["status"] == 200
        assert "USDT" in ex.currencies and "TRC20" in ex.currencies["USDT"]["networks"]
        assert ex.market(SWAP)["contractSize"] == 0.01


# ------------------------------------------------------------------------------ orders


def test_market_order_on_swap_amount_in_contracts(fake, ex):
    order = ex.create_order(SWAP, "market", "buy", 0.2, None, {"clientOrderId": "mkt1"})
    assert order["id"].isdigit() and order["clientOrderId"] == "mkt1"
    stored = fake.get_order("mkt1")
    assert stored["sz"] == "0.2" and stored["state"] == "filled" and stored["tdMode"] == "cross"
    assert stored["accFillSz"] == "0.2" and stored["avgPx"] == "65000"
    assert stored["fee"] == "-0.065" and stored["feeCcy"] == "USDT"  # 0.2*0.01*65000*0.05%
    fetched = ex.fetch_order(order["id"], SWAP, {"clientOrderId": "mkt1"})
    assert fetched["id"] == order["id"] and fetched["status"] == "closed"
    assert fetched["filled"] == 0.2 and fetched["average"] == 65000
    assert fetched["fee"] == {"cost": 0.065, "currency": "USDT"}
    assert fake.order_requests[-1]["outcome"] == "accepted"


def test_spot_market_buy_fee_in_base(fake, ex):
    fake.set_price("BTC", 70000)
    ex.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "spot1"})
    o = ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "spot1"})
    assert o["status"] == "closed" and o["average"] == 70000 and o["filled"] == 0.001
    assert o["fee"]["currency"] == "BTC"


def test_limit_rests_fetch_cancel(fake, ex):
    order = ex.create_order(SWAP, "limit", "buy", 0.3, 60000, {"clientOrderId": "lim1"})
    assert fake.get_order("lim1")["state"] == "live"
    fetched = ex.fetch_order(order["id"], SWAP, {"clientOrderId": "lim1"})
    assert fetched["status"] == "open" and fetched["price"] == 60000 and fetched["amount"] == 0.3
    assert [o["clientOrderId"] for o in ex.fetch_open_orders(SWAP)] == ["lim1"]
    canceled = ex.cancel_order(order["id"], SWAP)
    assert canceled["id"] == order["id"]
    assert fake.get_order("lim1")["state"] == "canceled"
    assert ex.fetch_order(order["id"], SWAP)["status"] == "canceled"
    assert ex.fetch_open_orders(SWAP) == []
    with pytest.raises(ccxt.OrderNotFound):  # 51401 already canceled
        ex.cancel_order(order["id"], SWAP)
    with pytest.raises(ccxt.OrderNotFound):  # 51603
        ex.fetch_order("1", SWAP, {"clientOrderId": "nosuch"})


def test_marketable_limit_fills_and_fill_helper(fake, ex):
    ex.create_order(SWAP, "limit", "sell", 0.1, 64000, {"clientOrderId": "take1"})
    assert fake.get_order("take1")["state"] == "filled"
    assert fake.get_order("take1")["avgPx"] == "65000"
    ex.create_order(SWAP, "limit", "sell", 0.5, 66000, {"clientOrderId": "rest1"})
    fake.fill("rest1", sz="0.2")
    assert ex.fetch_order(None, SWAP, {"clientOrderId": "rest1"})["filled"] == 0.2
    fake.fill("rest1")
    o = ex.fetch_order(None, SWAP, {"clientOrderId": "rest1"})
    assert o["status"] == "closed" and o["filled"] == 0.5 and o["average"] == 66000


def test_duplicate_client_order_id_refused_while_the_first_is_pending(fake, ex):
    ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder) as info:
        ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "dup1"})
    assert type(info.value) is ccxt.InvalidOrder and "51016" in str(info.value)
    reqs = fake.order_requests
    assert [r["outcome"] for r in reqs] == ["accepted", "rejected"]
    assert reqs[1]["codes"] == ["51016"] and reqs[1]["orders"][0]["clOrdId"] == "dup1"
    assert len(fake.orders(KEY)) == 1
    # the same clOrdId on another API key is fine
    make_client(fake, KEY_B, SECRET_B, PASS_B).create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "dup1"})
    assert len(fake.orders()) == 2


def test_server_side_size_and_price_checks(fake, ex):
    # 0.000005 BTC passes ccxt's precision (1e-8) but is below minSz 0.00001 -> 51020
    with pytest.raises(ccxt.InvalidOrder, match="51020"):
        ex.create_order("BTC/USDT", "market", "buy", 0.000005)
    base = {
        "instId": "BTC-USDT-SWAP",
        "side": "buy",
        "ordType": "limit",
        "tdMode": "cross",
        "px": "60000",
    }
    with pytest.raises(ccxt.InvalidOrder, match="51121"):  # not a multiple of lotSz 0.1
        ex.privatePostTradeBatchOrders([dict(base, sz="0.15", clOrdId="lot1")])
    with pytest.raises(ccxt.InvalidOrder, match="51020"):  # lot-aligned but below minSz 0.0001
        ex.privatePostTradeBatchOrders(
            [
                dict(
                    base,
                    instId="ETH-USDT",
                    tdMode="cash",
                    px="3000",
                    sz="0.00005",
                    clOrdId="min1",
                )
            ]
        )
    with pytest.raises(ccxt.BadRequest, match="px"):  # tick size 0.1
        ex.privatePostTradeBatchOrders([dict(base, sz="0.1", px="60000.05", clOrdId="tick1")])
    with pytest.raises(ccxt.BadSymbol):  # 51001
        ex.privatePostTradeBatchOrders([dict(base, instId="DOGE-USDT-SWAP", sz="1")])
    assert fake.orders() == []
    assert [r["codes"] for r in fake.order_requests] == [
        ["51020"],
        ["51121"],
        ["51020"],
        ["51000"],
        ["51001"],
    ]
    # independent of ccxt: hand-signed request gets the per-item error
    body = json.dumps([dict(base, sz="0.05", clOrdId="raw1")])
    status, reply = signed_request(fake, "POST", "/api/v5/trade/batch-orders", body)
    assert status == 200 and reply["code"] == "1" and reply["data"][0]["sCode"] == "51121"


# ------------------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    "creds, code",
    [
        ((KEY, "wrong-secret", PASS), "50113"),
        ((KEY, SECRET, "wrong-pass"), "50105"),
        (("unknown-key", SECRET, PASS), "50111"),
    ],
)
def test_bad_credentials_raise_authentication_error(fake, creds, code):
    ex = make_client(fake, *creds)
    ex.load_markets()  # public in sandbox mode
    with pytest.raises(ccxt.AuthenticationError, match=code):
        ex.fetch_balance()
    assert fake.requests_log[-1]["status"] == 401


def test_wrong_secret_fails_load_markets_for_live_keys():
    with (
        FakeOKX(accounts={KEY: (SECRET, PASS)}, demo=False) as fake,
        pytest.raises(ccxt.AuthenticationError, match="50113"),
    ):
        make_client(fake, KEY, "bad", PASS, sandbox=False).load_markets()


def test_demo_header_enforced(fake):
    ex = make_client(fake)
    ex.load_markets()
    ex.set_sandbox_mode(False)  # drops x-simulated-trading, keeps urls
    ex.urls["api"]["rest"] = fake.base_url
    with pytest.raises(ccxt.AuthenticationError, match="50101"):
        ex.fetch_balance()


def test_live_fake_rejects_demo_header_and_none_accepts_both():
    with FakeOKX(accounts={KEY: (SECRET, PASS)}, demo=False) as fake:
        ex = make_client(fake)  # sandbox -> header present
        with pytest.raises(ccxt.AuthenticationError, match="50101"):
            ex.fetch_balance()
    with FakeOKX(accounts={KEY: (SECRET, PASS)}) as fake:
        assert make_client(fake).fetch_balance()["USDT"]["free"] == 100000
        assert make_client(fake, sandbox=False).fetch_balance()["USDT"]["free"] == 100000


def test_signature_covers_body_and_timestamp_window(fake):
    body = json.dumps({"instId": "BTC-USDT-SWAP", "lever": "3", "mgnMode": "cross"})
    status, reply = signed_request(
        fake,
        "POST",
        "/api/v5/account/set-leverage",
        body,
        sign_body=body.replace("3", "4"),
    )
    assert (status, reply["code"]) == (401, "50113")
    status, reply = signed_request(fake, "POST", "/api/v5/account/set-leverage", body)
    assert (status, reply["code"]) == (200, "0")
    status, reply = signed_request(fake, "GET", "/api/v5/account/balance", ts="2020-01-01T00:00:00.000Z")
    assert (status, reply["code"]) == (401, "50102")
    # ccxt with a clock 60 s behind -> 50102, which ccxt maps to InvalidNonce
    ex = make_client(fake)
    ex.options["timeDifference"] = 60_000
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance()


# ------------------------------------------------------------------------------ faults


def test_rate_limit_fault(fake, ex):
    f = fake.inject("rate_limit", path_suffix="trade/batch-orders", times=1)
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "rl1"})
    assert f.fired == 1 and f.remaining == 0
    assert fake.requests_log[-1]["status"] == 429 and fake.requests_log[-1]["code"] == "50011"
    assert fake.orders() == [] and fake.order_requests[-1]["outcome"] == "fault:rate_limit"
    ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "rl1"})  # retry works
    assert fake.get_order("rl1")["state"] == "filled"


def test_insufficient_funds_fault(fake, ex):
    fake.inject("insufficient_funds", path_suffix="trade/batch-orders", times=1)
    with pytest.raises(ccxt.InsufficientFunds, match="51008"):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "if1"})
    assert fake.orders() == [] and fake.order_requests[-1]["codes"] == ["51008"]


@pytest.mark.parametrize(
    "kind, exc, status",
    [
        ("maintenance", ccxt.OnMaintenance, 503),
        ("busy", ccxt.ExchangeNotAvailable, 429),
        ("timeout_code", ccxt.RequestTimeout, 400),
    ],
)
def test_error_code_faults(fake, ex, kind, exc, status):
    fake.inject(kind, path_suffix="trade/batch-orders", times=1)
    with pytest.raises(exc):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "e1"})
    assert fake.requests_log[-1]["status"] == status
    assert fake.get_order("e1") is None


def test_drop_after_record(fake, ex):
    fake.inject("drop_after_record", path_suffix="trade/batch-orders", times=1)
    with pytest.raises(ccxt.NetworkError) as info:
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "drop1"})
    assert not isinstance(info.value, ccxt.RequestTimeout)
    found = ex.fetch_order(None, SWAP, {"clientOrderId": "drop1"})
    assert found["status"] == "closed" and found["filled"] == 0.1
    assert fake.order_requests[-1]["outcome"] == "accepted"
    assert fake.order_requests[-1]["fault"] == "drop_after_record"


def test_hold_past_client_timeout(fake):
    ex = make_client(fake, timeout=400)
    ex.load_markets()
    fake.inject("hold", path_suffix="trade/batch-orders", times=1, seconds=0.8)
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "hold1"})
    assert time.monotonic() - started < 0.75
    found = ex.fetch_order(None, SWAP, {"clientOrderId": "hold1"})
    assert found["status"] == "open"


def test_hold_then_close(fake, ex):
    fake.inject("hold", path_suffix="trade/batch-orders", times=1, seconds=0.2, then="close")
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(SWAP, "market", "sell", 0.1, None, {"clientOrderId": "hc1"})
    assert fake.get_order("hc1")["state"] == "filled"


def test_latency_fault_and_api_key_filter(fake, ex):
    fake.inject("latency", seconds=0.3, api_key=KEY_B)
    t0 = time.monotonic()
    ex.fetch_balance()
    assert time.monotonic() - t0 < 0.25
    ex_b = make_client(fake, KEY_B, SECRET_B, PASS_B)
    ex_b.load_markets()  # public calls carry no key -> no latency
    t0 = time.monotonic()
    ex_b.fetch_balance()
    assert time.monotonic() - t0 >= 0.3


def test_probabilistic_faults_are_reproducible():
    def pattern(seed):
        with FakeOKX(seed=seed) as fake:
            fake.inject("busy", path_suffix="public/time", probability=0.5)
            ex = make_client(fake)
            out = []
            for _ in range(12):
                try:
                    ex.fetch_time()
                    out.append(0)
                except ccxt.ExchangeNotAvailable:
                    out.append(1)
            return out

    first = pattern(7)
    assert first == pattern(7)
    assert 0 < sum(first) < 12


def test_inject_validates_arguments(fake):
    with pytest.raises(ValueError):
        fake.inject("explode")
    with pytest.raises(ValueError):
        fake.inject("hold")  # needs seconds


# ------------------------------------------------------------------------------ account


def test_set_leverage_balance_and_position_mode(fake, ex):
    ex.set_leverage(5, SWAP)
    ex.set_leverage(7, SWAP, {"marginMode": "isolated", "posSide": "net"})
    assert fake.leverage_calls == 2
    assert fake.get_leverage(KEY, "BTC-USDT-SWAP") == "5"
    assert fake.get_leverage(KEY, "BTC-USDT-SWAP", "isolated", "net") == "7"
    with pytest.raises(ccxt.ExchangeError, match="59102"):  # SOL max lever is 50
        ex.set_leverage(100, "SOL/USDT:USDT")
    with pytest.raises(ccxt.BadSymbol):
        ex.privatePostAccountSetLeverage({"instId": "XXX-USDT-SWAP", "lever": "3", "mgnMode": "cross"})
    assert fake.leverage_calls == 4 and fake.get_leverage(KEY, "SOL-USDT-SWAP") is None
    ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "lev1"})
    assert fake.get_order("lev1")["lever"] == "5"

    fake.set_balance(KEY, "USDT", "1234.5")
    bal = ex.fetch_balance()
    assert bal["USDT"]["free"] == 1234.5 and bal["USDT"]["total"] == 1234.5

    assert ex.fetch_position_mode()["hedged"] is False
    fake.set_pos_mode(KEY, "long_short_mode")
    assert ex.fetch_position_mode()["hedged"] is True
    with pytest.raises(ccxt.BadRequest, match="posSide"):  # hedged account needs posSide
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "h1"})
    ex.create_order(
        SWAP,
        "market",
        "buy",
        0.1,
        None,
        {"clientOrderId": "h2", "positionSide": "long"},
    )
    assert fake.get_order("h2")["posSide"] == "long"


# ------------------------------------------------------------------------------ concurrency


def _place_concurrently(clients_and_ids):
    barrier = threading.Barrier(len(clients_and_ids))
    errors = []

    def run(client, cl):
        try:
            barrier.wait()
            client.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": cl})
        except ccxt.BaseError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in clients_and_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert errors == []


def test_max_concurrent_orders_same_key(fake):
    a1, a2 = make_client(fake), make_client(fake)
    a1.load_markets()
    a2.load_markets()
    fake.inject("latency", path_suffix="trade/batch-orders", seconds=0.4)
    _place_concurrently([(a1, "c1"), (a2, "c2")])
    assert fake.max_concurrent_orders == {KEY: 2}
    assert fake.in_flight_orders(KEY) == 0
    assert len(fake.orders(KEY)) == 2


def test_max_concurrent_orders_tracked_per_key(fake):
    a, b = make_client(fake), make_client(fake, KEY_B, SECRET_B, PASS_B)
    a.load_markets()
    b.load_markets()
    fake.inject("latency", path_suffix="trade/batch-orders", seconds=0.4)
    _place_concurrently([(a, "k1"), (b, "k2")])
    assert fake.max_concurrent_orders == {KEY: 1, KEY_B: 1}
    # sequential cancels count too but never overlap
    a.cancel_order(fake.get_order("k1")["ordId"], SWAP)
    assert fake.max_concurrent_orders[KEY] == 1


# ------------------------------------------------------------------------------ OKX's rules


def test_a_filled_orders_client_order_id_places_a_second_order(fake, ex):
    first = ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "re1"})
    second = ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "re1"})

    assert first["id"] != second["id"]
    assert fake.order_count("re1") == 2
    assert fake.duplicate_cl_ord_ids(KEY) == {"re1": 2}
    assert [o["ordId"] for o in fake.orders_by_cl_ord_id(KEY)["re1"]] == [
        first["id"],
        second["id"],
    ]
    # Get order details by clOrdId answers the latest, as OKX documents
    assert ex.fetch_order(None, SWAP, {"clientOrderId": "re1"})["id"] == second["id"]
    assert fake.get_order("re1")["ordId"] == second["id"]
    assert ex.fetch_order(first["id"], SWAP)["id"] == first["id"]


def test_a_cancelled_orders_client_order_id_places_a_new_order(fake, ex):
    first = ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "rc1"})
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "rc1"})
    ex.cancel_order(first["id"], SWAP)

    again = ex.create_order(SWAP, "limit", "buy", 0.1, 60000, {"clientOrderId": "rc1"})

    assert again["id"] != first["id"]
    assert [o["state"] for o in fake.orders_by_cl_ord_id()["rc1"]] == [
        "canceled",
        "live",
    ]


def test_a_partially_filled_order_still_blocks_its_client_order_id(fake, ex):
    ex.create_order(SWAP, "limit", "buy", 0.5, 60000, {"clientOrderId": "pf1"})
    fake.fill("pf1", sz="0.2")
    with pytest.raises(ccxt.InvalidOrder, match="51016"):
        ex.create_order(SWAP, "limit", "buy", 0.5, 60000, {"clientOrderId": "pf1"})
    fake.cancel("pf1")
    ex.create_order(SWAP, "limit", "buy", 0.5, 60000, {"clientOrderId": "pf1"})
    assert fake.order_count("pf1") == 2


def test_a_client_order_id_repeated_within_one_batch_is_refused(fake, ex):
    item = {"instId": "BTC-USDT-SWAP", "side": "buy", "ordType": "market"}
    item.update({"tdMode": "cross", "sz": "0.1", "clOrdId": "bat1"})
    reply = ex.privatePostTradeBatchOrders([dict(item), dict(item)])
    assert reply["code"] == "2"
    assert [d["sCode"] for d in reply["data"]] == ["0", "51016"]
    assert fake.order_count("bat1") == 1


def test_exp_time_already_past_on_arrival_is_refused_with_50036(fake, ex):
    ex.headers["expTime"] = str(fake.now_ms() - 1)
    with pytest.raises(ccxt.ExchangeError, match="50036") as info:
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "x1"})
    assert type(info.value) is ccxt.ExchangeError  # ccxt leaves 50036 unmapped
    assert fake.requests_log[-1]["status"] == 200 and fake.requests_log[-1]["code"] == "1"
    [logged] = fake.order_requests
    assert logged["outcome"] == "expired:50036" and logged["processedMs"] is None
    assert logged["expTime"] is not None and logged["arrivedMs"] > logged["expTime"]
    assert fake.orders() == [] and fake.max_concurrent_orders == {}


def test_exp_time_in_the_future_places_the_order(fake, ex):
    deadline = fake.now_ms() + 5000
    ex.headers["expTime"] = str(deadline)
    ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "x2"})
    [logged] = fake.order_requests
    assert logged["expTime"] == deadline and logged["outcome"] == "accepted"
    assert logged["arrivedMs"] <= logged["processedMs"] <= deadline


def test_a_bad_exp_time_is_a_parameter_error(fake, ex):
    ex.headers["expTime"] = "soon"
    with pytest.raises(ccxt.BadRequest, match="expTime"):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "x3"})
    assert fake.orders() == []


def test_exp_time_passed_while_held_is_refused_with_50037(fake, ex):
    fake.inject("hold_before", path_suffix="trade/batch-orders", seconds=60)
    ex.headers["expTime"] = str(fake.now_ms() + 1000)
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(ex.create_order, SWAP, "market", "buy", 0.1, None, {"clientOrderId": "x4"})
        [held] = fake.wait_for_request(state="held")
        assert fake.in_flight_orders(KEY) == 1
        assert fake.wait_for(lambda: fake.now_ms() > held["expTime"])
        assert fake.in_flight_orders(KEY) == 0  # it can no longer place anything
        fake.release_held()
        with pytest.raises(ccxt.ExchangeError, match="50037"):
            sent.result(timeout=5)
    [logged] = fake.order_requests
    assert logged["outcome"] == "expired:50037" and logged["codes"] == ["50037"]
    assert logged["processedMs"] > logged["expTime"]
    assert fake.orders() == []


def test_a_request_held_past_the_client_timeout_is_processed_later(fake):
    ex = make_client(fake, timeout=300)
    ex.load_markets()
    fake.inject("hold_before", path_suffix="trade/batch-orders", times=1, seconds=60)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "late1"})
    assert fake.held_requests(KEY) == 1 and fake.in_flight_orders(KEY) == 1
    assert fake.get_order("late1") is None  # not processed yet

    assert fake.release_held() == 1
    [done] = fake.wait_for_request(outcome="accepted")

    assert done["processedMs"] - done["arrivedMs"] >= 200  # after the client gave up
    assert fake.get_order("late1")["state"] == "filled"
    assert fake.in_flight_orders(KEY) == 0 and fake.max_concurrent_orders == {KEY: 1}


def test_a_held_request_stops_counting_as_in_flight_once_its_exp_time_passes(fake):
    ex = make_client(fake, timeout=300)
    ex.load_markets()
    fake.inject("hold_before", path_suffix="trade/batch-orders", times=1, seconds=60)
    ex.headers["expTime"] = str(fake.now_ms() + 1500)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "late2"})
    assert fake.in_flight_orders(KEY) == 1
    assert fake.wait_for(lambda: fake.in_flight_orders(KEY) == 0)
    assert fake.held_requests(KEY) == 1  # still held, but it can place nothing now

    # a re-send after the deadline does not overlap the held one
    ex.headers["expTime"] = str(fake.now_ms() + 5000)
    ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "late2"})
    fake.release_held()
    fake.wait_for_request(outcome="expired:50037")

    assert fake.order_count("late2") == 1
    assert fake.max_concurrent_orders == {KEY: 1}


def test_code_then_process_answers_50004_and_places_the_order_later(fake, ex):
    fake.inject("code_then_process", path_suffix="trade/batch-orders", times=1, seconds=0.2)
    with pytest.raises(ccxt.RequestTimeout, match="50004"):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "c4"})
    assert fake.requests_log[-1]["code"] == "50004"

    [done] = fake.wait_for_request(outcome="accepted")

    assert done["fault"] == "code_then_process"
    assert ex.fetch_order(None, SWAP, {"clientOrderId": "c4"})["status"] == "closed"
    assert fake.wait_for(lambda: fake.in_flight_orders(KEY) == 0)


def test_code_then_process_counts_as_in_flight_until_processed(fake, ex):
    fake.inject("code_then_process", path_suffix="trade/batch-orders", seconds=60)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "c5"})
    fake.wait_for_request(state="held")
    assert fake.in_flight_orders(KEY) == 1 and fake.orders() == []

    fake.release_held()
    fake.wait_for_request(outcome="accepted")
    assert fake.order_count("c5") == 1
    assert fake.wait_for(lambda: fake.in_flight_orders(KEY) == 0)


def test_code_then_process_after_the_exp_time_places_nothing(fake, ex):
    fake.inject("code_then_process", path_suffix="trade/batch-orders", seconds=60)
    ex.headers["expTime"] = str(fake.now_ms() + 1000)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "c6"})
    [held] = fake.wait_for_request(state="held")
    assert fake.wait_for(lambda: fake.now_ms() > held["expTime"])
    fake.release_held()
    fake.wait_for_request(outcome="expired:50037")
    assert fake.orders() == []


@pytest.mark.parametrize(
    "code, exc, status",
    [
        ("50026", ccxt.ExchangeNotAvailable, 500),
        ("50061", ccxt.ExchangeError, 429),
        ("51149", ccxt.ExchangeError, 200),
        ("51054", ccxt.ExchangeError, 200),
    ],
)
def test_code_fault_answers_like_okx(fake, ex, code, exc, status):
    fake.inject("code", code=code, path_suffix="trade/batch-orders", times=1)
    with pytest.raises(exc, match=code) as info:
        ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "k9"})
    assert type(info.value) is exc
    assert fake.requests_log[-1]["status"] == status
    assert fake.orders() == [] and fake.order_requests[-1]["outcome"] == "fault:code"


def test_market_canceled_fault_cancels_a_market_order_unfilled(fake, ex):
    fake.inject("market_canceled", path_suffix="trade/batch-orders", times=1)
    ex.create_order(SWAP, "market", "buy", 0.1, None, {"clientOrderId": "mc1"})
    found = ex.fetch_order(None, SWAP, {"clientOrderId": "mc1"})
    assert found["status"] == "canceled" and found["filled"] == 0
    assert fake.get_order("mc1")["accFillSz"] == "0"


def test_a_skewed_clock_shows_in_public_time_and_the_signature_window():
    with FakeOKX(accounts={KEY: (SECRET, PASS)}, demo=True, clock_offset_ms=-90_000) as fake:
        ex = make_client(fake)
        before = time.time() * 1000
        assert abs(ex.fetch_time() - (before - 90_000)) < 2000
        with pytest.raises(ccxt.InvalidNonce):  # our timestamp is 90 s ahead of OKX's
            ex.fetch_balance()
        ex.load_time_difference()  # ccxt signs on OKX's clock from now on
        assert ex.fetch_balance()["USDT"]["free"] == 100000
        fake.set_clock_offset(0)
        assert abs(fake.now_ms() - time.time() * 1000) < 1000


def test_inject_validates_the_new_kinds(fake):
    with pytest.raises(ValueError):
        fake.inject("code")  # needs a code
    with pytest.raises(ValueError):
        fake.inject("hold_before")  # needs seconds
    assert fake.inject("code_then_process", seconds=1).code == "50004"


def test_wait_for_gives_up_after_its_timeout(fake):
    assert fake.wait_for(lambda: False, timeout=0.1) is False
    with pytest.raises(TimeoutError):
        fake.wait_for_request(outcome="accepted", timeout=0.1)


def test_it_refuses_placements_past_okxs_rate_limits(fake, ex):
    placed = 0
    with pytest.raises(ccxt.RateLimitExceeded):
        for n in range(61):  # 60 Place order requests per 2 s per instrument
            ex.create_order("BTC/USDT:USDT", "market", "buy", 0.1, None, {"clientOrderId": f"rl{n}", "tdMode": "cross"})
            placed += 1
    assert placed == 60
    assert fake.order_requests[-1]["outcome"] == "rate_limited:50011"
    # A batch counts its orders against its own, larger budget.
    batch = [{"symbol": "BTC/USDT:USDT", "type": "market", "side": "buy", "amount": 0.1,
              "params": {"clientOrderId": f"rb{n}", "tdMode": "cross"}} for n in range(20)]  # fmt: skip
    assert len(ex.create_orders(batch)) == 20


def test_it_counts_every_order_of_a_key_against_the_sub_account_limit():
    with FakeOKX(accounts={KEY: (SECRET, PASS)}, demo=True, rate_limits={"orders_per_key": 25}) as fake:
        ex = make_client(fake)
        ex.load_markets()
        batch = [{"symbol": "BTC/USDT:USDT", "type": "market", "side": "buy", "amount": 0.1,
                  "params": {"clientOrderId": f"sa{n}", "tdMode": "cross"}} for n in range(20)]  # fmt: skip
        ex.create_orders(batch)
        with pytest.raises(ccxt.ExchangeError):
            ex.create_orders([{**o, "params": {**o["params"], "clientOrderId": o["params"]["clientOrderId"] + "x"}}
                              for o in batch[:10]])  # fmt: skip
        assert fake.order_requests[-1]["outcome"] == "rate_limited:50061"
        assert len(fake.orders()) == 20


def test_it_refuses_chosen_members_of_a_batch_and_places_the_others(fake, ex):
    fake.refuse_orders({"pick2"}, code="51008")
    batch = [{"symbol": "BTC/USDT:USDT", "type": "market", "side": "buy", "amount": 0.1,
              "params": {"clientOrderId": f"pick{n}", "tdMode": "cross"}} for n in range(1, 4)]  # fmt: skip

    ex.create_orders(batch)

    assert fake.order_requests[-1]["codes"] == ["0", "51008", "0"]
    assert sorted(o["clOrdId"] for o in fake.orders()) == ["pick1", "pick3"]
