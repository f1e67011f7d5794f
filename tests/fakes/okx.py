"""A local fake of the OKX v5 REST API for tests (standard library only).

The real ``ccxt.okx`` client talks to it over HTTP on 127.0.0.1::

    with FakeOKX(accounts={"key": ("secret", "pass")}, demo=True) as fake:
        ex = ccxt.okx({"apiKey": "key", "secret": "secret", "password": "pass",
                       "timeout": 3000, "enableRateLimit": False,
                       "options": {"fetchMarkets": {"types": ["spot", "swap"]}}})
        ex.urls["api"]["rest"] = fake.base_url
        ex.urls["test"]["rest"] = fake.base_url
        ex.set_sandbox_mode(True)          # demo account -> x-simulated-trading: 1
        ex.create_order("BTC/USDT:USDT", "market", "buy", 0.2, None,
                        {"clientOrderId": "abc1"})

Replies mimic OKX: ``{"code": "0", "data": [...], "msg": ""}``; errors carry OKX
error codes (HTTP status as in OKX's error-code table) so that ccxt raises the same
exception classes it raises against the real exchange.

Endpoints (all under ``/api/v5/``):
    public : public/instruments, public/time, market/ticker
    private: asset/currencies, account/balance, account/config,
             account/set-position-mode, account/set-leverage,
             trade/order (GET = details, POST = place one), trade/batch-orders,
             trade/cancel-order, trade/cancel-batch-orders,
             trade/orders-pending, trade/orders-history

OKX's rules that "never place twice" stands on, applied as OKX documents them:

* a clOrdId is refused (sCode 51016) only while an earlier order with it (same API key)
  is still pending (live / partially_filled); a filled or cancelled order's clOrdId
  places a NEW order (new ordId). Get order details by clOrdId returns the latest one.
* the ``expTime`` request header (unix ms, the fake's clock) on placements: already past
  on arrival -> 50036, past when the request comes to be processed -> 50037; neither
  places anything.
* a request may be processed late: held before processing (``hold_before``) or answered
  50004 at once and processed later (``code_then_process``), both subject to expTime.

The fake's clock is the local clock plus ``clock_offset_ms`` (public/time, the
OK-ACCESS-TIMESTAMP window and expTime all use it), so a client's clock handling can be
tested against a skewed exchange.

Fault injection (see :meth:`FakeOKX.inject`), thread-safe, seedable randomness.
Tests wait on :meth:`FakeOKX.wait_for` (woken by every change) instead of sleeping.
No request logging to stdout/stderr; secrets, passphrases and signatures are
never stored in the logs kept for tests.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["DEFAULT_INSTRUMENTS", "FAULT_KINDS", "FakeOKX", "Fault"]

API_PREFIX = "/api/v5/"

# --------------------------------------------------------------------------------------
# Static exchange data
# --------------------------------------------------------------------------------------

_LIST_TIME = "1606468572000"


def _spot(base: str, lot: str, min_sz: str, tick: str, lever: str = "10") -> dict:
    return {
        "alias": "",
        "auctionEndTime": "",
        "baseCcy": base,
        "category": "1",
        "ctMult": "",
        "ctType": "",
        "ctVal": "",
        "ctValCcy": "",
        "expTime": "",
        "instFamily": "",
        "instId": f"{base}-USDT",
        "instType": "SPOT",
        "lever": lever,
        "listTime": _LIST_TIME,
        "lotSz": lot,
        "maxIcebergSz": "9999999999.0000000000000000",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "9999999999",
        "maxMktAmt": "1000000",
        "maxMktSz": "1000000",
        "maxStopSz": "1000000",
        "maxTriggerSz": "9999999999",
        "maxTwapSz": "9999999999",
        "minSz": min_sz,
        "optType": "",
        "quoteCcy": "USDT",
        "ruleType": "normal",
        "settleCcy": "",
        "state": "live",
        "stk": "",
        "tickSz": tick,
        "uly": "",
    }


def _swap(base: str, ct_val: str, lot: str, min_sz: str, tick: str, lever: str) -> dict:
    return {
        "alias": "",
        "auctionEndTime": "",
        "baseCcy": "",
        "category": "1",
        "ctMult": "1",
        "ctType": "linear",
        "ctVal": ct_val,
        "ctValCcy": base,
        "expTime": "",
        "instFamily": f"{base}-USDT",
        "instId": f"{base}-USDT-SWAP",
        "instType": "SWAP",
        "lever": lever,
        "listTime": _LIST_TIME,
        "lotSz": lot,
        "maxIcebergSz": "100000000.0000000000000000",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "100000000",
        "maxMktAmt": "",
        "maxMktSz": "12000",
        "maxStopSz": "12000",
        "maxTriggerSz": "100000000",
        "maxTwapSz": "100000000",
        "minSz": min_sz,
        "optType": "",
        "quoteCcy": "",
        "ruleType": "normal",
        "settleCcy": "USDT",
        "state": "live",
        "stk": "",
        "tickSz": tick,
        "uly": f"{base}-USDT",
    }


#: Instruments served by default (values close to the real OKX ones).
DEFAULT_INSTRUMENTS: list[dict] = [
    _spot("BTC", lot="0.00000001", min_sz="0.00001", tick="0.1"),
    _spot("ETH", lot="0.000001", min_sz="0.0001", tick="0.01"),
    _spot("SOL", lot="0.000001", min_sz="0.001", tick="0.01"),
    _swap("BTC", ct_val="0.01", lot="0.1", min_sz="0.1", tick="0.1", lever="125"),
    _swap("ETH", ct_val="0.1", lot="0.1", min_sz="0.1", tick="0.01", lever="125"),
    _swap("SOL", ct_val="1", lot="0.01", min_sz="0.01", tick="0.01", lever="50"),
]

DEFAULT_PRICES = {"BTC": "65000", "ETH": "3500", "SOL": "150"}

_CURRENCY_NAMES = {
    "BTC": "Bitcoin",
    "ETH": "Ethereum",
    "SOL": "Solana",
    "USDT": "Tether",
}
_CURRENCY_CHAINS = {
    "BTC": [("BTC-Bitcoin", "0.0005", "0.00000001", "8")],
    "ETH": [("ETH-ERC20", "0.001", "0.001", "8")],
    "SOL": [("SOL-Solana", "0.008", "0.01", "6")],
    "USDT": [("USDT-TRC20", "1.5", "2", "6"), ("USDT-ERC20", "5", "2", "6")],
}

# Fee rates (positive numbers; OKX reports the charged fee as a negative value).
_FEES = {
    "SPOT": {"taker": Decimal("0.001"), "maker": Decimal("0.0008")},
    "SWAP": {"taker": Decimal("0.0005"), "maker": Decimal("0.0002")},
}

# OKX error codes used by the fake: code -> (HTTP status, message)
_ERR = {
    "50001": (503, "Service temporarily unavailable. Please try again later."),
    "50002": (400, "JSON syntax error"),
    "50004": (
        400,
        (
            "API endpoint request timeout (does not mean that the request was "
            "successful or failed, please check the request result)."
        ),
    ),
    "50006": (400, 'Invalid Content-Type, please use "application/json" format.'),
    "50011": (429, "Too Many Requests"),
    "50013": (429, "Systems are busy. Please try again later."),
    "50014": (400, "Parameter {0} can not be empty."),
    "50026": (500, "System error. Try again later."),
    # OKX's table lists 50036 and 50037 with HTTP 200; a request to OKX demo with an
    # expTime already past was seen answered 200, code "1", sCode 50036 per order.
    "50036": (
        200,
        "The expTime can't be earlier than the current system time. Please adjust the expTime and try again.",
    ),
    "50037": (200, "Order expired."),
    "50061": (429, "Sub-account rate limit exceeded."),
    "50101": (401, "APIKey does not match current environment."),
    "50102": (401, "Timestamp request expired."),
    "50103": (401, 'Request header "OK-ACCESS-KEY" can not be empty.'),
    "50104": (401, 'Request header "OK-ACCESS-PASSPHRASE" can not be empty.'),
    "50105": (401, 'Request header "OK-ACCESS-PASSPHRASE" incorrect.'),
    "50106": (401, 'Request header "OK-ACCESS-SIGN" can not be empty.'),
    "50107": (401, 'Request header "OK-ACCESS-TIMESTAMP" can not be empty.'),
    "50111": (401, "Invalid OK-ACCESS-KEY."),
    "50112": (401, "Invalid OK-ACCESS-TIMESTAMP."),
    "50113": (401, "Invalid Sign."),
    "51000": (400, "Parameter {0} error"),
    "51001": (200, "Instrument ID or Spread ID doesn't exist."),
    "51003": (200, "Either client order ID or order ID is required."),
    "51603": (200, "Order does not exist"),
    "59102": (
        200,
        "Leverage exceeds the maximum leverage. Please adjust the leverage.",
    ),
}

_S_ERR = {  # per-item (sCode) messages
    "51000": "Parameter {0} error",
    "51001": "Instrument ID or Spread ID doesn't exist.",
    "51008": "Order failed. Insufficient USDT balance in account.",
    "51016": "Duplicated clOrdId",
    "51054": "Request timed out. Please try again.",
    "51149": "Order timed out. Please try again.",
    "51020": "Your order should meet or exceed the minimum order amount.",
    "51121": "Order quantity must be a multiple of the lot size.",
    "51400": "Cancellation failed as the order has been filled, canceled or does not exist.",
    "51401": "Cancellation failed as the order has been canceled.",
    "51402": "Cancellation failed as the order has been filled.",
}

#: Supported fault kinds.
#:  latency            sleep ``seconds`` before processing (inside the concurrency-counted
#:                     section for order requests); several latency faults add up.
#:  rate_limit         HTTP 429 {"code": "50011"}; nothing recorded.
#:  maintenance        HTTP 503 {"code": "50001"}; nothing recorded.
#:  busy               HTTP 429 {"code": "50013"}; nothing recorded.
#:  timeout_code       HTTP 400 {"code": "50004"}; nothing recorded.
#:  code               answer OKX code ``code`` at once, nothing recorded: 50xxx codes
#:                     as a top-level code with OKX's HTTP status (e.g. 50026 -> 500,
#:                     50061 -> 429), 51xxx codes (51149, 51054, ...) per order inside a
#:                     code "1" reply (HTTP 200), as placement replies carry them.
#:  insufficient_funds order placement only: every order of the request is rejected with
#:                     sCode 51008 inside a code "1" reply; nothing recorded.
#:  drop_after_record  the request is processed normally (order recorded) and then the
#:                     connection is closed without any reply.
#:  hold               the request is processed normally, then the reply is held for
#:                     ``seconds`` and sent (``then="reply"``) or the connection closed
#:                     (``then="close"``).
#:  hold_before        placement only: the request is held ``seconds`` BEFORE it is
#:                     processed (the client's timeout may fire meanwhile), then
#:                     processed as OKX would (expTime checked then: past -> 50037, not
#:                     placed) and the reply written if the client is still there.
#:                     :meth:`FakeOKX.release_held` ends the hold early.
#:  code_then_process  placement only: answer ``code`` (default "50004", "does not
#:                     indicate success or failure") at once, then process the request
#:                     ``seconds`` later in the background (expTime checked then).
#:  market_canceled    placement only: market orders of the request are accepted and
#:                     end ``canceled`` with nothing filled (OKX cancels a market/IOC
#:                     order that cannot fill).
#: OKX v5's placement limits, per API key (sub-account) over a sliding window: Place
#: order requests per instrument, orders of Place multiple orders per instrument (a
#: one-order batch counts as Place order), and new orders per sub-account (50061).
RATE_LIMITS = {
    "place_per_instrument": 60,
    "batch_orders_per_instrument": 300,
    "orders_per_key": 1000,
    "window_ms": 2000,
}

FAULT_KINDS = (
    "latency",
    "rate_limit",
    "maintenance",
    "busy",
    "timeout_code",
    "code",
    "insufficient_funds",
    "drop_after_record",
    "hold",
    "hold_before",
    "code_then_process",
    "market_canceled",
)
_ERROR_FAULTS = {
    "rate_limit": "50011",
    "maintenance": "50001",
    "busy": "50013",
    "timeout_code": "50004",
}
_PLACE_ONLY_FAULTS = (
    "insufficient_funds",
    "hold_before",
    "code_then_process",
    "market_canceled",
)
_PENDING_STATES = ("live", "partially_filled")

_PLACE_PATHS = ("trade/order", "trade/batch-orders")
_CANCEL_PATHS = ("trade/cancel-order", "trade/cancel-batch-orders")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    return d


def _fmt(d: Decimal) -> str:
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and (value % step) == 0


def _parse_iso(ts: str) -> float | None:
    try:
        if not ts.endswith("Z"):
            return None
        dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        return dt.replace(tzinfo=UTC).timestamp()
    except (ValueError, TypeError):
        return None


def _valid_cl_ord_id(value: str) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 32 and value.isascii() and value.isalnum()


class _Reply:
    __slots__ = ("payload", "status")

    def __init__(self, status: int, payload: dict):
        self.status = status
        self.payload = payload


def _ok(data: list, msg: str = "") -> _Reply:
    return _Reply(200, {"code": "0", "data": data, "msg": msg})


def _err(code: str, *fmt: str, data: list | None = None, status: int | None = None) -> _Reply:
    http_status, msg = _ERR.get(code, (200, "Operation failed."))
    if fmt:
        msg = msg.format(*fmt)
    return _Reply(status or http_status, {"code": code, "data": data or [], "msg": msg})


def _s_err(code: str, *fmt: str) -> tuple[str, str]:
    msg = _S_ERR.get(code, "Operation failed.")
    return code, (msg.format(*fmt) if fmt else msg)


@dataclass
class Fault:
    """An injected fault. Returned by :meth:`FakeOKX.inject`; pass it to ``remove_fault``.

    ``remaining`` is ``None`` for unlimited; ``fired`` counts the requests it hit.
    """

    kind: str
    path_suffix: str | None = None
    api_key: str | None = None
    method: str | None = None
    remaining: int | None = None
    probability: float = 1.0
    seconds: float = 0.0
    then: str = "reply"
    http_status: int | None = None
    code: str | None = None
    fired: int = 0

    def matches(self, method: str, rel_path: str, api_key: str | None) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_suffix is not None and not rel_path.endswith(self.path_suffix.strip("/")):
            return False
        if self.api_key is not None and self.api_key != api_key:
            return False
        # some faults only make sense for order placement
        return self.kind not in _PLACE_ONLY_FAULTS or (method == "POST" and rel_path in _PLACE_PATHS)


@dataclass
class _Account:
    secret: str
    passphrase: str
    pos_mode: str = "net_mode"
    balances: dict = field(default_factory=lambda: {"USDT": Decimal(100000)})
    orders: dict = field(default_factory=dict)  # ordId -> order dict
    # clOrdId -> ordIds, oldest first: OKX only refuses a clOrdId while an order with
    # it is pending, so one clOrdId may name several orders over time.
    by_cl: dict = field(default_factory=dict)


class _Request:
    __slots__ = (
        "api_key",
        "body",
        "headers",
        "method",
        "query",
        "raw_path",
        "rel_path",
    )

    def __init__(self, method, raw_path, rel_path, query, body, headers):
        self.method = method
        self.raw_path = raw_path
        self.rel_path = rel_path
        self.query = query
        self.body = body
        self.headers = headers
        self.api_key: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # pragma: no cover - silence
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: no stale keep-alives
    server_version = "FakeOKX/1.0"
    sys_version = ""

    def log_message(self, format, *args):
        pass

    def log_error(self, format, *args):
        pass

    def do_GET(self):
        self.server.fake._handle(self, "GET")

    def do_POST(self):
        self.server.fake._handle(self, "POST")

    def do_DELETE(self):
        self.server.fake._handle(self, "DELETE")

    def do_PUT(self):
        self.server.fake._handle(self, "PUT")


# --------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------


class FakeOKX:
    """Fake OKX v5 REST server. See the module docstring for an overview.

    :param accounts: ``{api_key: (secret, passphrase)}``.
    :param demo: ``True`` -> private calls must carry ``x-simulated-trading: 1``;
        ``False`` -> the header must be absent; ``None`` -> either is accepted.
        Mismatch -> 50101 (ccxt ``AuthenticationError``).
    :param seed: seed of the ``random.Random`` used by probabilistic faults.
    :param prices: reference prices, keys are a base ccy ("BTC") or an instId.
    :param instruments: replace :data:`DEFAULT_INSTRUMENTS`.
    :param max_clock_skew: allowed |now - OK-ACCESS-TIMESTAMP| in seconds (50102 beyond).
    :param clock_offset_ms: the fake's clock runs this far ahead of the local clock
        (negative: behind); see :meth:`set_clock_offset`.
    """

    def __init__(
        self,
        accounts: dict | None = None,
        demo: bool | None = None,
        *,
        seed: int = 0,
        prices: dict | None = None,
        instruments: list | None = None,
        max_clock_skew: float = 30.0,
        clock_offset_ms: int = 0,
        host: str = "127.0.0.1",
        rate_limits: dict | bool = True,
    ):
        self.demo = demo
        # OKX's published placement limits (see RATE_LIMITS); False turns them off.
        self.rate_limits = (
            dict(RATE_LIMITS, **rate_limits)
            if isinstance(rate_limits, dict)
            else (dict(RATE_LIMITS) if rate_limits else None)
        )
        self._rate_windows: dict[tuple, list] = {}
        self._refused_cl: dict[str, str] = {}
        self.max_clock_skew = float(max_clock_skew)
        self._clock_offset_ms = int(clock_offset_ms)
        self._host = host
        self._lock = threading.RLock()
        # Notified on every change a test may wait for (requests, orders, holds).
        self._changed = threading.Condition(self._lock)
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ord_ids = itertools.count(701_000_000_000_000_001)
        self._trade_ids = itertools.count(100_000_001)

        self._instruments = {i["instId"]: dict(i) for i in (instruments or DEFAULT_INSTRUMENTS)}
        self._prices: dict[str, Decimal] = {}
        for inst_id in self._instruments:
            base = inst_id.split("-")[0]
            if base in DEFAULT_PRICES:
                self._prices[inst_id] = Decimal(DEFAULT_PRICES[base])
        for k, v in (prices or {}).items():
            self.set_price(k, v)

        self._accounts: dict[str, _Account] = {}
        for key, creds in (accounts or {}).items():
            self.add_account(key, *creds)

        self._faults: list[Fault] = []
        self._order_requests: list[dict] = []
        self._requests: list[dict] = []
        # Order requests in flight: request id -> (api key, expTime or None). One counts
        # until it is processed or its expTime has passed (it can place nothing then).
        self._active: dict[int, tuple[str, int | None]] = {}
        self._request_ids = itertools.count(1)
        self._held: dict[int, threading.Event] = {}  # request id -> release
        self._background: list[threading.Thread] = []
        self._max_concurrent: dict[str, int] = {}
        self._leverage: dict[tuple, str] = {}
        self._leverage_log: list[dict] = []
        self.errors: list[BaseException] = []  # internal exceptions of the fake (should stay empty)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stop.clear()
        self._server = _Server((self._host, 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeOKX",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes up latency/hold sleepers
        with self._lock:
            for event in self._held.values():
                event.set()
            background = list(self._background)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for thread in background:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOKX is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # ---------------------------------------------------------------- configuration
    def add_account(
        self,
        api_key: str,
        secret: str,
        passphrase: str,
        pos_mode: str = "net_mode",
        balances: dict | None = None,
    ) -> None:
        with self._lock:
            acct = _Account(secret=secret, passphrase=passphrase)
            self._accounts[api_key] = acct
        self.set_pos_mode(api_key, pos_mode)
        for ccy, amount in (balances or {}).items():
            self.set_balance(api_key, ccy, amount)

    def set_pos_mode(self, api_key: str, pos_mode: str) -> None:
        """``"net_mode"`` (one-way) or ``"long_short_mode"`` (hedged)."""
        if pos_mode not in ("net_mode", "long_short_mode"):
            raise ValueError(pos_mode)
        with self._lock:
            self._accounts[api_key].pos_mode = pos_mode

    def set_balance(self, api_key: str, ccy: str, amount: Any) -> None:
        with self._lock:
            self._accounts[api_key].balances[ccy] = Decimal(str(amount))

    def set_price(self, inst_or_base: str, price: Any) -> None:
        """Set the reference price of one instId, or of every instrument of a base ccy."""
        p = Decimal(str(price))
        with self._lock:
            if inst_or_base in self._instruments:
                self._prices[inst_or_base] = p
                return
            hit = [i for i in self._instruments if i.split("-")[0] == inst_or_base]
            if not hit:
                raise KeyError(inst_or_base)
            for inst_id in hit:
                self._prices[inst_id] = p

    def get_price(self, inst_id: str) -> Decimal:
        with self._lock:
            return self._prices[inst_id]

    @property
    def prices(self) -> dict:
        with self._lock:
            return dict(self._prices)

    @property
    def instruments(self) -> dict:
        return copy.deepcopy(self._instruments)

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    # ---------------------------------------------------------------- clock
    def now_ms(self) -> int:
        """The fake exchange's clock (unix ms): the local clock plus the offset."""
        return int(time.time() * 1000) + self._clock_offset_ms

    def set_clock_offset(self, offset_ms: int) -> None:
        """Skew the exchange's clock: public/time, the signature's timestamp window,
        expTime and order times all follow it."""
        with self._changed:
            self._clock_offset_ms = int(offset_ms)
            self._changed.notify_all()

    # ---------------------------------------------------------------- faults
    def inject(
        self,
        kind: str,
        *,
        path_suffix: str | None = None,
        times: int | None = None,
        probability: float = 1.0,
        api_key: str | None = None,
        method: str | None = None,
        seconds: float = 0.0,
        then: str = "reply",
        http_status: int | None = None,
        code: str | None = None,
    ) -> Fault:
        """Inject a fault; returns the :class:`Fault` (inspect ``fired``/``remaining``).

        :param kind: one of :data:`FAULT_KINDS`.
        :param path_suffix: match requests whose path (without query, relative to
            ``/api/v5/``) ends with it, e.g. ``"trade/batch-orders"``; ``None`` = all.
        :param times: fire at most N times (``None`` = unlimited).
        :param probability: chance to fire on each matching request (seeded RNG).
        :param api_key: only requests authenticated with this key.
        :param method: only this HTTP method.
        :param seconds: for ``latency``, ``hold``, ``hold_before`` and
            ``code_then_process``.
        :param then: for ``hold``: ``"reply"`` (send the reply late) or ``"close"``.
        :param http_status: override the HTTP status of error faults.
        :param code: the OKX code of ``code`` (required) and ``code_then_process``
            (default "50004").
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind in ("latency", "hold", "hold_before", "code_then_process") and (seconds <= 0):
            raise ValueError(f"{kind} needs seconds > 0")
        if kind == "code_then_process":
            code = code or "50004"
        if kind in ("code", "code_then_process") and not (isinstance(code, str) and code.isdigit() and code != "0"):
            raise ValueError(f"{kind} needs an OKX error code, e.g. code='50026'")
        if then not in ("reply", "close"):
            raise ValueError("then must be 'reply' or 'close'")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        fault = Fault(
            kind=kind,
            path_suffix=path_suffix,
            api_key=api_key,
            method=method,
            remaining=times,
            probability=probability,
            seconds=float(seconds),
            then=then,
            http_status=http_status,
            code=code,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list:
        with self._lock:
            return list(self._faults)

    def _pick_faults(self, req: _Request) -> tuple[float, Fault | None]:
        """Return (total latency, outcome fault). Consumes ``times`` of fired faults."""
        latency = 0.0
        outcome: Fault | None = None
        with self._lock:
            for f in self._faults:
                if f.kind != "latency" and outcome is not None:
                    continue
                if not f.matches(req.method, req.rel_path, req.api_key):
                    continue
                if f.probability < 1.0 and self._rng.random() >= f.probability:
                    continue
                f.fired += 1
                if f.remaining is not None:
                    f.remaining -= 1
                if f.kind == "latency":
                    latency += f.seconds
                else:
                    outcome = f
        return latency, outcome

    # ---------------------------------------------------------------- inspection
    def orders(self, api_key: str | None = None) -> list:
        """Copies of the stored orders (of one key, or all), oldest first."""
        with self._lock:
            keys = [api_key] if api_key is not None else list(self._accounts)
            out = []
            for k in keys:
                for o in self._accounts[k].orders.values():
                    d = dict(o)
                    d["apiKey"] = k
                    out.append(d)
            out.sort(key=lambda o: int(o["ordId"]))
            return out

    def orders_by_cl_ord_id(self, api_key: str | None = None) -> dict[str, list]:
        """clOrdId -> copies of every order placed with it (of one key, or all), oldest
        first; a test asserts "exactly one order per request" on the list lengths."""
        out: dict[str, list] = {}
        for order in self.orders(api_key):
            if order["clOrdId"]:
                out.setdefault(order["clOrdId"], []).append(order)
        return out

    def order_count(self, cl_ord_id: str, api_key: str | None = None) -> int:
        """How many orders were placed with ``cl_ord_id`` (of one key, or all)."""
        return len(self.orders_by_cl_ord_id(api_key).get(cl_ord_id, []))

    def duplicate_cl_ord_ids(self, api_key: str | None = None) -> dict[str, int]:
        """clOrdIds that placed more than one order, with their counts (``{}`` when
        every clOrdId placed at most one)."""
        return {cl: len(found) for cl, found in self.orders_by_cl_ord_id(api_key).items() if len(found) > 1}

    def get_order(
        self,
        cl_ord_id: str | None = None,
        ord_id: str | None = None,
        api_key: str | None = None,
    ) -> dict | None:
        """A copy of one order by ordId, or the LATEST order with ``cl_ord_id`` (as
        OKX's Get order details answers)."""
        with self._lock:
            found = self._find(cl_ord_id, ord_id, api_key)
            return dict(found[1]) if found else None

    def _find(self, cl_ord_id, ord_id, api_key):
        keys = [api_key] if api_key is not None else list(self._accounts)
        hits = []
        for k in keys:
            acct = self._accounts[k]
            if ord_id is not None:
                oid = ord_id
            else:
                oid = (acct.by_cl.get(cl_ord_id) or [None])[-1]
            if oid is not None and oid in acct.orders:
                hits.append((k, acct.orders[oid]))
        if len(hits) > 1:
            raise ValueError("order id is ambiguous across API keys; pass api_key")
        return hits[0] if hits else None

    @property
    def order_requests(self) -> list:
        """Every order placement request received (incl. rejected ones), oldest first.

        Items: ``id``, ``ts`` (arrival, local epoch s), ``arrivedMs`` (arrival on the
        fake's clock), ``expTime`` (the header as int ms, or None), ``processedMs``
        (when it was processed on the fake's clock; None when it never was),
        ``state`` ("received", "held" before processing, "done"), ``apiKey`` (None
        when authentication failed), ``path``, ``orders`` (request items),
        ``outcome`` (e.g. ``"accepted"``, ``"rejected"``, ``"fault:rate_limit"``,
        ``"auth:50113"``, ``"expired:50036"`` (past expTime on arrival),
        ``"expired:50037"`` (past expTime when processed), ``"abandoned"`` (the fake
        stopped first)), ``codes`` (per item sCodes), ``fault`` (kind or None),
        ``replied`` (the code answered to the client, which for
        ``code_then_process`` differs from the outcome).
        """
        with self._lock:
            return copy.deepcopy(self._order_requests)

    @property
    def requests_log(self) -> list:
        """Every request: ``ts``, ``method``, ``path`` (relative, without query),
        ``query``, ``apiKey``, ``status``, ``code``. No secrets/signatures."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def max_concurrent_orders(self) -> dict:
        """Per API key: highest number of order requests (place / batch place / cancel
        / batch cancel) in flight at once. A request is in flight from its arrival
        until it is processed, or until its expTime has passed (a request past its
        deadline can no longer place anything), whichever comes first; a request held
        or answered early (``hold_before``, ``code_then_process``) stays in flight."""
        with self._lock:
            return dict(self._max_concurrent)

    def in_flight_orders(self, api_key: str) -> int:
        """Order requests of ``api_key`` in flight now (see max_concurrent_orders)."""
        with self._lock:
            return self._count_in_flight(api_key, self.now_ms())

    def _count_in_flight(self, api_key: str, now_ms: int) -> int:
        return sum(1 for key, exp in self._active.values() if key == api_key and (exp is None or now_ms <= exp))

    def held_requests(self, api_key: str | None = None) -> int:
        """Placement requests being held before processing (hold_before, or waiting
        in the background after code_then_process)."""
        with self._lock:
            return sum(1 for r in self._order_requests if r["state"] == "held" and api_key in (None, r["apiKey"]))

    def release_held(self) -> int:
        """End every current hold now: held requests are processed at once (expTime
        checked then). Returns how many were released."""
        with self._lock:
            events = list(self._held.values())
        for event in events:
            event.set()
        return len(events)

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` is true; False on timeout. It is re-checked on
        every change in the fake (request logged, processed, order changed) and every
        50 ms for conditions that depend on the clock (e.g. in_flight_orders after an
        expTime passes). The predicate may call the fake's inspection methods."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def wait_for_request(self, n: int = 1, *, api_key: str | None = None, timeout: float = 5.0, **match) -> list:
        """Wait until at least ``n`` placement requests (of ``api_key``) match
        ``match`` (log fields, e.g. ``state="held"`` or ``outcome="accepted"``);
        returns the matching log entries, or raises TimeoutError."""

        def found():
            return [
                r
                for r in self._order_requests
                if api_key in (None, r["apiKey"]) and all(r.get(k) == v for k, v in match.items())
            ]

        if not self.wait_for(lambda: len(found()) >= n, timeout):
            raise TimeoutError(f"fewer than {n} placement requests matching {match}")
        with self._lock:
            return copy.deepcopy(found())

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    @property
    def leverage_settings(self) -> dict:
        """``{(api_key, instId, mgnMode, posSide): lever}``; posSide is "net" when the
        request carried none. Values are strings as echoed by OKX (e.g. "5")."""
        with self._lock:
            return dict(self._leverage)

    def get_leverage(self, api_key: str, inst_id: str, mgn_mode: str = "cross", pos_side: str = "net") -> str | None:
        with self._lock:
            return self._leverage.get((api_key, inst_id, mgn_mode, pos_side))

    @property
    def leverage_calls(self) -> int:
        """Number of authenticated set-leverage requests received (incl. rejected)."""
        with self._lock:
            return len(self._leverage_log)

    @property
    def leverage_log(self) -> list:
        with self._lock:
            return copy.deepcopy(self._leverage_log)

    def reset_stats(self) -> None:
        """Clear logs and counters (not orders, faults, or leverage settings)."""
        with self._lock:
            self._order_requests.clear()
            self._requests.clear()
            self._max_concurrent.clear()
            for key, _ in self._active.values():  # in-flight requests still count
                self._max_concurrent[key] = self._count_in_flight(key, self.now_ms())
            self._leverage_log.clear()

    # ---------------------------------------------------------------- test helpers
    def fill(
        self,
        cl_ord_id: str | None = None,
        *,
        ord_id: str | None = None,
        px: Any = None,
        sz: Any = None,
        api_key: str | None = None,
    ) -> dict:
        """Fill (fully, or ``sz`` more of) a resting order as a maker trade at ``px``
        (default: its limit price). Returns a copy of the updated order."""
        with self._lock:
            found = self._find(cl_ord_id, ord_id, api_key)
            if not found:
                raise KeyError(cl_ord_id or ord_id)
            order = found[1]
            if order["state"] not in ("live", "partially_filled"):
                raise ValueError(f"order is {order['state']}, cannot fill")
            price = _dec(px) if px is not None else _dec(order["px"]) or self._prices[order["instId"]]
            remaining = Decimal(order["sz"]) - Decimal(order["accFillSz"])
            qty = remaining if sz is None else min(Decimal(str(sz)), remaining)
            self._apply_fill(order, qty, price, maker=True)
            self._changed.notify_all()
            return dict(order)

    def cancel(
        self,
        cl_ord_id: str | None = None,
        *,
        ord_id: str | None = None,
        api_key: str | None = None,
    ) -> dict:
        """Cancel a pending order as OKX would (e.g. an expired GTD order); returns a
        copy. Its clOrdId may then be used again."""
        with self._lock:
            found = self._find(cl_ord_id, ord_id, api_key)
            if not found:
                raise KeyError(cl_ord_id or ord_id)
            order = found[1]
            if order["state"] not in _PENDING_STATES:
                raise ValueError(f"order is {order['state']}, cannot cancel")
            self._cancel(order)
            self._changed.notify_all()
            return dict(order)

    # ---------------------------------------------------------------- HTTP plumbing
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        raw_path = h.path
        split = urlsplit(raw_path)
        rel = split.path[len(API_PREFIX) :] if split.path.startswith(API_PREFIX) else None
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = h.rfile.read(length).decode("utf-8", "replace") if length > 0 else ""
        req = _Request(method, raw_path, rel or split.path, query, body, h.headers)

        action = "reply"
        hold = 0.0
        try:
            if rel is None:
                reply = _Reply(404, {"code": "404", "data": [], "msg": "Not Found"})
            else:
                reply, outcome_fault = self._process(req)
                if outcome_fault is not None and outcome_fault.kind == "drop_after_record":
                    action = "close"
                elif outcome_fault is not None and outcome_fault.kind == "hold":
                    hold = outcome_fault.seconds
                    action = outcome_fault.then
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: answer like OKX's system error
            with self._lock:
                self.errors.append(exc)
            reply = _Reply(
                500,
                {"code": "50026", "data": [], "msg": "System error. Try again later."},
            )

        with self._lock:
            self._requests.append(
                {
                    "ts": time.time(),
                    "method": method,
                    "path": req.rel_path,
                    "query": dict(query),
                    "apiKey": req.api_key,
                    "status": None if action == "close" else reply.status,
                    "code": None if action == "close" else reply.payload.get("code"),
                    "action": action,
                }
            )
        if hold > 0:
            self._stop.wait(hold)
        if action == "close":
            h.close_connection = True
            return  # nothing written; socketserver closes the socket -> client sees EOF
        payload = json.dumps(reply.payload, separators=(",", ":")).encode()
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:
            pass  # client went away (e.g. it timed out during a hold)

    _ROUTES: ClassVar[dict[tuple[str, str], tuple[str, bool]]] = {
        ("GET", "public/instruments"): ("_r_instruments", False),
        ("GET", "public/time"): ("_r_time", False),
        ("GET", "market/ticker"): ("_r_ticker", False),
        ("GET", "asset/currencies"): ("_r_currencies", True),
        ("GET", "account/balance"): ("_r_balance", True),
        ("GET", "account/config"): ("_r_config", True),
        ("POST", "account/set-position-mode"): ("_r_set_pos_mode", True),
        ("POST", "account/set-leverage"): ("_r_set_leverage", True),
        ("GET", "trade/order"): ("_r_get_order", True),
        ("POST", "trade/order"): ("_r_place", True),
        ("POST", "trade/batch-orders"): ("_r_place", True),
        ("POST", "trade/cancel-order"): ("_r_cancel", True),
        ("POST", "trade/cancel-batch-orders"): ("_r_cancel", True),
        ("GET", "trade/orders-pending"): ("_r_pending", True),
        ("GET", "trade/orders-history"): ("_r_history", True),
    }

    def _process(self, req: _Request) -> tuple[_Reply, Fault | None]:
        route = self._ROUTES.get((req.method, req.rel_path))
        if route is None:
            if any(p == req.rel_path for (_, p) in self._ROUTES):
                return _Reply(405, {"code": "50115", "data": [], "msg": "Invalid request method."}), None
            return _Reply(404, {"code": "404", "data": [], "msg": "Not Found"}), None
        handler_name, private = route
        is_place = req.method == "POST" and req.rel_path in _PLACE_PATHS
        log_entry = None
        if is_place:
            log_entry = {
                "id": next(self._request_ids),
                "ts": time.time(),
                "arrivedMs": self.now_ms(),
                "expTime": None,
                "processedMs": None,
                "state": "received",
                "apiKey": None,
                "path": req.rel_path,
                "orders": self._order_items_for_log(req.body),
                "outcome": None,
                "codes": [],
                "fault": None,
            }
            with self._changed:
                self._order_requests.append(log_entry)
                self._changed.notify_all()

        if private:
            auth_error = self._authenticate(req)
            if auth_error is not None:
                if log_entry is not None:
                    self._finish(log_entry, "auth:" + auth_error.payload["code"])
                return auth_error, None
            if log_entry is not None:
                with self._lock:
                    log_entry["apiKey"] = req.api_key

        exp_time = None
        if is_place:
            exp_time, refusal = self._check_exp_time_on_arrival(req, log_entry)
            if refusal is not None:
                return refusal, None

        counted = req.api_key is not None and req.method == "POST" and req.rel_path in _PLACE_PATHS + _CANCEL_PATHS
        request_id = log_entry["id"] if log_entry else next(self._request_ids)
        if counted:
            self._enter(request_id, req.api_key, exp_time)
        handed_off = False
        try:
            latency, fault = self._pick_faults(req)
            if latency > 0:
                self._stop.wait(latency)
            if fault is not None and (fault.kind in _ERROR_FAULTS or fault.kind == "code"):
                code = fault.code or _ERROR_FAULTS[fault.kind]
                reply = self._error_reply(req, code, fault.http_status)
                if log_entry is not None:
                    with self._lock:
                        log_entry["fault"] = fault.kind
                    self._finish(log_entry, "fault:" + fault.kind, [code])
                return reply, fault
            if fault is not None and fault.kind == "code_then_process":
                # OKX answered (e.g. 50004, "does not indicate success or failure")
                # but still has the request: it is processed later, and stays in
                # flight until then (or until its expTime passes).
                with self._lock:
                    log_entry["fault"] = fault.kind
                worker = threading.Thread(
                    target=self._process_later,
                    args=(req, handler_name, fault, log_entry, exp_time),
                    name=f"FakeOKX-late-{request_id}",
                    daemon=True,
                )
                with self._lock:
                    self._background.append(worker)
                handed_off = True
                worker.start()
                return self._error_reply(req, fault.code, fault.http_status), fault
            if fault is not None and fault.kind == "hold_before":
                self._hold(log_entry, fault.seconds)
            return self._run(req, handler_name, fault, log_entry, exp_time), fault
        finally:
            if counted and not handed_off:
                self._leave(request_id)

    def _run(self, req, handler_name, fault, log, exp_time) -> _Reply:
        """Process a request now; a placement past its expTime places nothing."""
        if log is not None:
            now = self.now_ms()
            with self._lock:
                log["processedMs"] = now
                if fault is not None:
                    log["fault"] = fault.kind
            if self._stop.is_set():
                self._finish(log, "abandoned")
                return _err("50001")
            if exp_time is not None and now > exp_time:
                self._finish(log, "expired:50037", ["50037"])
                return self._refusal(req, "50037")
        reply = getattr(self, handler_name)(req, fault, log)
        if log is not None:
            self._finish(log, log["outcome"], log["codes"])
        return reply

    def _process_later(self, req, handler_name, fault, log, exp_time) -> None:
        try:
            self._hold(log, fault.seconds)
            self._run(req, handler_name, fault, log, exp_time)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: keep it for the test
            with self._lock:
                self.errors.append(exc)
        finally:
            self._leave(log["id"])
            with self._lock:
                self._background.remove(threading.current_thread())

    def _hold(self, log, seconds: float) -> None:
        """Hold a placement before processing, until ``seconds`` pass, release_held()
        or stop()."""
        release = threading.Event()
        with self._changed:
            self._held[log["id"]] = release
            log["state"] = "held"
            self._changed.notify_all()
        if self._stop.is_set():
            release.set()
        try:
            release.wait(seconds)
        finally:
            with self._changed:
                self._held.pop(log["id"], None)
                log["state"] = "received"
                self._changed.notify_all()

    def _finish(self, log, outcome, codes=None) -> None:
        with self._changed:
            log["outcome"] = outcome
            if codes is not None:
                log["codes"] = list(codes)
            log["state"] = "done"
            self._changed.notify_all()

    def _enter(self, request_id: int, api_key: str, exp_time: int | None) -> None:
        with self._changed:
            self._active[request_id] = (api_key, exp_time)
            n = self._count_in_flight(api_key, self.now_ms())
            if n > self._max_concurrent.get(api_key, 0):
                self._max_concurrent[api_key] = n
            self._changed.notify_all()

    def _leave(self, request_id: int) -> None:
        with self._changed:
            self._active.pop(request_id, None)
            self._changed.notify_all()

    def _check_exp_time_on_arrival(self, req, log) -> tuple[int | None, _Reply | None]:
        """The expTime header (unix ms on the fake's clock): (value, refusal)."""
        raw = req.headers.get("expTime")
        if raw is None:
            return None, None
        try:
            exp_time = int(raw.strip())
        except ValueError:
            self._finish(log, "rejected:51000", ["51000"])
            return None, _err("51000", "expTime")
        with self._lock:
            log["expTime"] = exp_time
        if self.now_ms() > exp_time:
            self._finish(log, "expired:50036", ["50036"])
            return exp_time, self._refusal(req, "50036")
        return exp_time, None

    def _refusal(self, req, code: str) -> _Reply:
        """Every order of a placement refused with ``code`` before any was placed: a
        code "1" reply with the code per order (as OKX answers 50036), or the bare
        code when the body carries no orders."""
        items = self._order_items_for_log(req.body)
        if not items:
            return _err(code)
        msg = _S_ERR.get(code) or _ERR.get(code, (200, "Operation failed."))[1]
        now = str(self.now_ms())
        data = [
            {
                "clOrdId": str(i.get("clOrdId") or ""),
                "ordId": "",
                "sCode": code,
                "sMsg": msg,
                "tag": str(i.get("tag") or ""),
                "ts": now,
            }
            for i in items
        ]
        single = req.rel_path == "trade/order"
        top_msg = "Operation failed." if single else "All operations failed"
        return _Reply(
            200,
            {
                "code": "1",
                "data": data,
                "msg": top_msg,
                "inTime": now + "000",
                "outTime": now + "000",
            },
        )

    def _error_reply(self, req, code: str, http_status: int | None) -> _Reply:
        # 51xxx codes are per-order answers of a placement; 50xxx are top-level.
        is_place = req.method == "POST" and req.rel_path in _PLACE_PATHS
        if code.startswith("51") and is_place:
            return self._refusal(req, code)
        return _err(code, status=http_status)

    @staticmethod
    def _order_items_for_log(body: str) -> list:
        try:
            parsed = json.loads(body) if body else []
        except ValueError:
            return []
        items = parsed if isinstance(parsed, list) else [parsed]
        return [dict(i) for i in items if isinstance(i, dict)]

    def _authenticate(self, req: _Request) -> _Reply | None:
        h = req.headers
        key = h.get("OK-ACCESS-KEY")
        sign = h.get("OK-ACCESS-SIGN")
        ts = h.get("OK-ACCESS-TIMESTAMP")
        passphrase = h.get("OK-ACCESS-PASSPHRASE")
        if not key:
            return _err("50103")
        if not sign:
            return _err("50106")
        if not ts:
            return _err("50107")
        if not passphrase:
            return _err("50104")
        with self._lock:
            acct = self._accounts.get(key)
        if acct is None:
            return _err("50111")
        when = _parse_iso(ts)
        if when is None:
            return _err("50112")
        if abs(self.now_ms() / 1000 - when) > self.max_clock_skew:
            return _err("50102")
        if not hmac.compare_digest(passphrase, acct.passphrase):
            return _err("50105")
        prehash = ts + req.method + req.raw_path + req.body
        expected = base64.b64encode(hmac.new(acct.secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(sign, expected):
            return _err("50113")
        simulated = h.get("x-simulated-trading") == "1"
        if self.demo is True and not simulated:
            return _err("50101")
        if self.demo is False and simulated:
            return _err("50101")
        if req.method == "POST" and req.body:
            ctype = (h.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return _err("50006")
        req.api_key = key
        return None

    def _json_body(self, req: _Request):
        if not req.body:
            return None, None
        try:
            return json.loads(req.body), None
        except ValueError:
            return None, _err("50002")

    # ---------------------------------------------------------------- public routes
    def _r_instruments(self, req, fault, log):
        inst_type = req.query.get("instType")
        if not inst_type:
            return _err("50014", "instType")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return _err("51000", "instType")
        data = []
        for inst in self._instruments.values():
            if inst_type == "MARGIN":
                if inst["instType"] != "SPOT" or Decimal(inst["lever"] or "1") <= 1:
                    continue
                inst = dict(inst, instType="MARGIN")
            elif inst["instType"] != inst_type:
                continue
            for f in ("instId", "uly", "instFamily"):
                if req.query.get(f) and inst[f] != req.query[f]:
                    break
            else:
                data.append(dict(inst))
        return _ok(data)

    def _r_time(self, req, fault, log):
        return _ok([{"ts": str(self.now_ms())}])

    def _r_ticker(self, req, fault, log):
        inst_id = req.query.get("instId")
        if not inst_id:
            return _err("50014", "instId")
        with self._lock:
            inst = self._instruments.get(inst_id)
            if inst is None:
                return _err("51001")
            px = self._prices[inst_id]
        tick = Decimal(inst["tickSz"])
        last = _fmt(px)
        return _ok(
            [
                {
                    "instType": inst["instType"],
                    "instId": inst_id,
                    "last": last,
                    "lastSz": "1",
                    "askPx": _fmt(px + tick),
                    "askSz": "10",
                    "bidPx": _fmt(px - tick),
                    "bidSz": "10",
                    "open24h": last,
                    "high24h": last,
                    "low24h": last,
                    "volCcy24h": "0",
                    "vol24h": "0",
                    "ts": str(self.now_ms()),
                    "sodUtc0": last,
                    "sodUtc8": last,
                }
            ]
        )

    # ---------------------------------------------------------------- account routes
    def _r_currencies(self, req, fault, log):
        wanted = set(filter(None, req.query.get("ccy", "").split(",")))
        data = []
        for ccy, chains in _CURRENCY_CHAINS.items():
            if wanted and ccy not in wanted:
                continue
            for chain, fee, min_wd, wd_tick in chains:
                data.append(
                    {
                        "burningFeeRate": "",
                        "canDep": True,
                        "canInternal": True,
                        "canWd": True,
                        "ccy": ccy,
                        "chain": chain,
                        "ctAddr": "",
                        "depEstOpenTime": "",
                        "depQuotaFixed": "",
                        "depQuoteDailyLayer2": "",
                        "fee": fee,
                        "logoLink": "",
                        "mainNet": chain.endswith(("Bitcoin", "Solana", "TRC20")),
                        "maxFee": fee,
                        "maxFeeForCtAddr": "",
                        "maxWd": "1000000",
                        "minDep": "0.00001",
                        "minDepArrivalConfirm": "1",
                        "minFee": fee,
                        "minFeeForCtAddr": "",
                        "minInternal": "0.0001",
                        "minWd": min_wd,
                        "minWdUnlockConfirm": "2",
                        "name": _CURRENCY_NAMES[ccy],
                        "needTag": False,
                        "usedDepQuotaFixed": "",
                        "usedWdQuota": "0",
                        "wdEstOpenTime": "",
                        "wdQuota": "10000000",
                        "wdTickSz": wd_tick,
                    }
                )
        return _ok(data)

    def _r_balance(self, req, fault, log):
        wanted = set(filter(None, req.query.get("ccy", "").split(",")))
        now = str(self.now_ms())
        with self._lock:
            balances = dict(self._accounts[req.api_key].balances)
            prices = dict(self._prices)
        details = []
        total = Decimal(0)
        for ccy, amount in balances.items():
            if wanted and ccy not in wanted:
                continue
            usd = amount * (prices.get(f"{ccy}-USDT", Decimal(1)) if ccy != "USDT" else 1)
            total += usd
            a = _fmt(amount)
            details.append(
                {
                    "accAvgPx": "",
                    "availBal": a,
                    "availEq": a,
                    "borrowFroz": "",
                    "cashBal": a,
                    "ccy": ccy,
                    "clSpotInUseAmt": "",
                    "crossLiab": "",
                    "disEq": _fmt(usd),
                    "eq": a,
                    "eqUsd": _fmt(usd),
                    "fixedBal": "0",
                    "frozenBal": "0",
                    "imr": "",
                    "interest": "",
                    "isoEq": "0",
                    "isoLiab": "",
                    "isoUpl": "0",
                    "liab": "",
                    "maxLoan": "",
                    "mgnRatio": "",
                    "mmr": "",
                    "notionalLever": "",
                    "ordFrozen": "0",
                    "rewardBal": "",
                    "spotBal": "",
                    "spotInUseAmt": "",
                    "spotIsoBal": "0",
                    "spotUpl": "",
                    "spotUplRatio": "",
                    "stgyEq": "0",
                    "totalPnl": "",
                    "totalPnlRatio": "",
                    "twap": "0",
                    "uTime": now,
                    "upl": "0",
                    "uplLiab": "",
                }
            )
        return _ok(
            [
                {
                    "adjEq": "",
                    "borrowFroz": "",
                    "details": details,
                    "imr": "",
                    "isoEq": "0",
                    "mgnRatio": "",
                    "mmr": "",
                    "notionalUsd": "",
                    "ordFroz": "",
                    "totalEq": _fmt(total),
                    "uTime": now,
                    "upl": "0",
                }
            ]
        )

    def _r_config(self, req, fault, log):
        with self._lock:
            pos_mode = self._accounts[req.api_key].pos_mode
        uid = str(int(hashlib.sha256(req.api_key.encode()).hexdigest()[:12], 16))
        return _ok(
            [
                {
                    "acctLv": "2",
                    "acctStpMode": "cancel_maker",
                    "autoLoan": False,
                    "ctIsoMode": "automatic",
                    "enableSpotBorrow": False,
                    "greeksType": "PA",
                    "ip": "",
                    "kycLv": "2",
                    "label": "fake",
                    "level": "Lv1",
                    "levelTmp": "",
                    "liquidationGear": "-1",
                    "mainUid": uid,
                    "mgnIsoMode": "automatic",
                    "opAuth": "0",
                    "perm": "read_only,trade",
                    "posMode": pos_mode,
                    "roleType": "0",
                    "spotBorrowAutoRepay": False,
                    "spotOffsetType": "",
                    "spotRoleType": "0",
                    "spotTraderInsts": [],
                    "traderInsts": [],
                    "type": "0",
                    "uid": uid,
                }
            ]
        )

    def _r_set_pos_mode(self, req, fault, log):
        body, error = self._json_body(req)
        if error:
            return error
        mode = (body or {}).get("posMode") if isinstance(body, dict) else None
        if mode not in ("net_mode", "long_short_mode"):
            return _err("51000", "posMode")
        with self._lock:
            self._accounts[req.api_key].pos_mode = mode
        return _ok([{"posMode": mode}])

    def _r_set_leverage(self, req, fault, log):
        body, error = self._json_body(req)
        entry = {
            "ts": time.time(),
            "apiKey": req.api_key,
            "body": body if isinstance(body, dict) else None,
            "code": None,
        }
        with self._lock:
            self._leverage_log.append(entry)
        reply = error or self._set_leverage(req.api_key, body)
        with self._lock:
            entry["code"] = reply.payload["code"]
        return reply

    def _set_leverage(self, api_key, body) -> _Reply:
        if not isinstance(body, dict):
            return _err("50000") if body is None else _err("51000", "body")
        inst_id, mgn_mode, pos_side = (
            body.get("instId"),
            body.get("mgnMode"),
            body.get("posSide"),
        )
        if body.get("lever") in (None, ""):
            return _err("50014", "lever")
        if not mgn_mode:
            return _err("50014", "mgnMode")
        if mgn_mode not in ("cross", "isolated"):
            return _err("51000", "mgnMode")
        if not inst_id:
            if body.get("ccy"):
                inst_id = None
            else:
                return _err("50014", "instId")
        inst = self._instruments.get(inst_id) if inst_id else None
        if inst_id and inst is None:
            return _err("51001")
        lever = _dec(body.get("lever"))
        if lever is None or lever < 1 or lever != lever.quantize(Decimal("0.01")):
            return _err("51000", "lever")
        max_lever = Decimal(inst["lever"]) if inst and inst.get("lever") else Decimal(125)
        if lever > min(max_lever, Decimal(125)):
            return _err("59102")
        with self._lock:
            long_short = self._accounts[api_key].pos_mode == "long_short_mode"
        if pos_side not in (None, "", "net", "long", "short"):
            return _err("51000", "posSide")
        if (
            mgn_mode == "isolated"
            and long_short
            and inst
            and inst["instType"] == "SWAP"
            and pos_side not in ("long", "short")
        ):
            return _err("51000", "posSide")
        side_key = pos_side or "net"
        lever_s = _fmt(lever)
        with self._lock:
            self._leverage[(api_key, inst_id or body.get("ccy"), mgn_mode, side_key)] = lever_s
        return _ok(
            [
                {
                    "instId": inst_id or "",
                    "lever": lever_s,
                    "mgnMode": mgn_mode,
                    "posSide": pos_side or ("net" if not long_short else ""),
                }
            ]
        )

    # ---------------------------------------------------------------- trading routes
    def _r_place(self, req, fault, log):
        body, error = self._json_body(req)
        if error:
            self._log_outcome(log, "rejected:50002", [])
            return error
        single = req.rel_path == "trade/order"
        if body is None:
            self._log_outcome(log, "rejected:50000", [])
            return _err("50000")
        if single and not isinstance(body, dict):
            self._log_outcome(log, "rejected:50002", [])
            return _err("50002")
        items = [body] if single else body
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            self._log_outcome(log, "rejected:50002", [])
            return _err("50002")
        if len(items) > 20:
            self._log_outcome(log, "rejected:51000", [])
            return _err("51000", "orders")
        limited = self._rate_limited(req.api_key, items)
        if limited:
            self._log_outcome(log, f"rate_limited:{limited}", [])
            return _err(limited)
        results = []
        now = str(self.now_ms())
        # OKX: a clOrdId must be unique among pending orders "and the current request".
        cl_ids = [str(i.get("clOrdId") or "") for i in items]
        for n, item in enumerate(items):
            if fault is not None and fault.kind == "insufficient_funds":
                code, msg = _s_err("51008")
                ord_id = ""
            elif cl_ids[n] and cl_ids[n] in cl_ids[:n]:
                code, msg = _s_err("51016")
                ord_id = ""
            elif cl_ids[n] in self._refused_cl:
                code, msg = _s_err(self._refused_cl[cl_ids[n]])
                ord_id = ""
            else:
                code, msg, ord_id = self._place_one(
                    req.api_key,
                    item,
                    cancel_market=fault is not None and fault.kind == "market_canceled",
                )
            results.append(
                {
                    "clOrdId": str(item.get("clOrdId") or ""),
                    "ordId": ord_id,
                    "sCode": code,
                    "sMsg": msg,
                    "tag": str(item.get("tag") or ""),
                    "ts": now,
                }
            )
        codes = [r["sCode"] for r in results]
        ok = sum(1 for c in codes if c == "0")
        if ok == len(results):
            top, top_msg, outcome = "0", "", "accepted"
        elif ok == 0:
            top = "1"
            top_msg = "Operation failed." if single else "All operations failed"
            outcome = "rejected"
        else:
            top, top_msg, outcome = "2", "Bulk operation partially succeeded", "partial"
        self._log_outcome(log, outcome, codes)
        return _Reply(
            200,
            {
                "code": top,
                "data": results,
                "msg": top_msg,
                "inTime": now + "000",
                "outTime": now + "000",
            },
        )

    def refuse_orders(self, cl_ord_ids, code: str = "51008") -> None:
        """Orders with these clOrdIds are refused with `code` (per order, e.g. 51008
        insufficient balance), the other members of their batch placed as usual."""
        with self._lock:
            self._refused_cl.update({str(cl): code for cl in cl_ord_ids})

    def _rate_limited(self, api_key: str, items: list) -> str:
        """ "50011" or "50061" when this placement request exceeds OKX's limits (nothing
        is placed then), else "" (and the request is counted)."""
        if self.rate_limits is None:
            return ""
        limits, now = self.rate_limits, self.now_ms()
        kind = "batch_orders_per_instrument" if len(items) > 1 else "place_per_instrument"
        wanted: dict[tuple, int] = {}
        for item in items:
            key = (api_key, kind, str(item.get("instId")))
            wanted[key] = 1 if kind == "place_per_instrument" else wanted.get(key, 0) + 1
        wanted[(api_key, "orders_per_key", "")] = len(items)
        with self._lock:
            for key in wanted:
                window = self._rate_windows.setdefault(key, [])
                window[:] = [(t, n) for t, n in window if t > now - limits["window_ms"]]
            for key, count in wanted.items():
                used = sum(n for _, n in self._rate_windows[key])
                if used + count > limits[key[1]]:
                    return "50061" if key[1] == "orders_per_key" else "50011"
            for key, count in wanted.items():
                self._rate_windows[key].append((now, count))
        return ""

    def _log_outcome(self, log, outcome, codes):
        if log is not None:
            with self._changed:
                log["outcome"] = outcome
                log["codes"] = list(codes)
                self._changed.notify_all()

    def _place_one(self, api_key: str, item: dict, *, cancel_market: bool = False) -> tuple[str, str, str]:
        inst_id = item.get("instId")
        if not inst_id:
            return _s_err("51000", "instId") + ("",)
        inst = self._instruments.get(inst_id)
        if inst is None:
            return _s_err("51001") + ("",)
        side = item.get("side")
        if side not in ("buy", "sell"):
            return _s_err("51000", "side") + ("",)
        ord_type = item.get("ordType")
        if ord_type not in (
            "market",
            "limit",
            "post_only",
            "fok",
            "ioc",
            "optimal_limit_ioc",
        ):
            return _s_err("51000", "ordType") + ("",)
        is_spot = inst["instType"] == "SPOT"
        td_mode = item.get("tdMode")
        if td_mode not in (("cash", "cross", "isolated") if is_spot else ("cross", "isolated")):
            return _s_err("51000", "tdMode") + ("",)
        cl = item.get("clOrdId")
        cl = "" if cl is None else str(cl)
        if cl and not _valid_cl_ord_id(cl):
            return _s_err("51000", "clOrdId") + ("",)
        tgt_ccy = item.get("tgtCcy") or ""
        if tgt_ccy not in ("", "base_ccy", "quote_ccy") or (tgt_ccy and not is_spot):
            return _s_err("51000", "tgtCcy") + ("",)
        quote_sized = is_spot and ord_type == "market" and (tgt_ccy == "quote_ccy" or (tgt_ccy == "" and side == "buy"))
        sz = _dec(item.get("sz"))
        if sz is None or sz <= 0:
            return _s_err("51000", "sz") + ("",)
        lot, min_sz = Decimal(inst["lotSz"]), Decimal(inst["minSz"])
        if not quote_sized:
            if not _is_multiple(sz, lot):
                return _s_err("51121") + ("",)
            if sz < min_sz:
                return _s_err("51020") + ("",)
        px = None
        if ord_type in ("limit", "post_only", "fok", "ioc"):
            px = _dec(item.get("px"))
            if px is None or px <= 0 or not _is_multiple(px, Decimal(inst["tickSz"])):
                return _s_err("51000", "px") + ("",)
        reduce_only = item.get("reduceOnly", False)
        if isinstance(reduce_only, str):
            reduce_only = reduce_only.lower() == "true"
        pos_side = item.get("posSide") or ""
        with self._lock:
            acct = self._accounts[api_key]
            if not is_spot:
                if acct.pos_mode == "net_mode":
                    if pos_side not in ("", "net"):
                        return _s_err("51000", "posSide") + ("",)
                    pos_side = "net"
                elif pos_side not in ("long", "short"):
                    return _s_err("51000", "posSide") + ("",)
            elif pos_side:
                return _s_err("51000", "posSide") + ("",)
            # OKX refuses a clOrdId only while an order with it is pending: a filled
            # or cancelled order's clOrdId places a second order.
            if cl and any(acct.orders[oid]["state"] in _PENDING_STATES for oid in acct.by_cl.get(cl, ())):
                return _s_err("51016") + ("",)
            ord_id = str(next(self._ord_ids))
            now = str(self.now_ms())
            order = {
                "accFillSz": "0",
                "algoClOrdId": "",
                "algoId": "",
                "attachAlgoClOrdId": "",
                "attachAlgoOrds": [],
                "avgPx": "",
                "cTime": now,
                "cancelSource": "",
                "cancelSourceReason": "",
                "category": "normal",
                "ccy": "",
                "clOrdId": cl,
                "fee": "0",
                "feeCcy": self._fee_ccy(inst, side),
                "fillPx": "",
                "fillSz": "",
                "fillTime": "",
                "instId": inst_id,
                "instType": inst["instType"],
                "isTpLimit": "false",
                "lever": "" if is_spot else self._lever_for(api_key, inst_id, td_mode, pos_side),
                "linkedAlgoOrd": {"algoId": ""},
                "ordId": ord_id,
                "ordType": ord_type,
                "pnl": "0",
                "posSide": pos_side,
                "px": _fmt(px) if px is not None else "",
                "pxType": "",
                "pxUsd": "",
                "pxVol": "",
                "quickMgnType": "",
                "rebate": "0",
                "rebateCcy": self._fee_ccy(inst, side),
                "reduceOnly": "true" if reduce_only else "false",
                "side": side,
                "slOrdPx": "",
                "slTriggerPx": "",
                "slTriggerPxType": "",
                "source": "",
                "state": "live",
                "stpId": "",
                "stpMode": item.get("stpMode") or "cancel_maker",
                "sz": _fmt(sz),
                "tag": str(item.get("tag") or ""),
                "tdMode": td_mode,
                "tgtCcy": tgt_ccy if is_spot else "",
                "tpOrdPx": "",
                "tpTriggerPx": "",
                "tpTriggerPxType": "",
                "tradeId": "",
                "uTime": now,
            }
            acct.orders[ord_id] = order
            if cl:
                acct.by_cl.setdefault(cl, []).append(ord_id)
            ref = self._prices[inst_id]
            if ord_type in ("market", "optimal_limit_ioc") and cancel_market:
                # No liquidity: OKX accepts the order and cancels it unfilled.
                self._cancel(order, source="ioc")
            elif ord_type in ("market", "optimal_limit_ioc"):
                if quote_sized:
                    qty = (sz / ref).quantize(lot, rounding=ROUND_DOWN)
                    order["tgtCcy"] = "quote_ccy"
                else:
                    qty = sz
                self._apply_fill(order, qty, ref, maker=False, quote_sized=quote_sized)
            else:
                marketable = (side == "buy" and px >= ref) or (side == "sell" and px <= ref)
                if marketable and ord_type == "post_only":
                    self._cancel(order, source="post_only")
                elif marketable:
                    self._apply_fill(order, sz, ref, maker=False)
                elif ord_type in ("fok", "ioc"):
                    self._cancel(order, source="ioc")
        return "0", "Order placed", ord_id

    def _lever_for(self, api_key, inst_id, td_mode, pos_side) -> str:
        for side in (pos_side or "net", "net"):
            v = self._leverage.get((api_key, inst_id, td_mode, side))
            if v is not None:
                return v
        return "10"

    @staticmethod
    def _fee_ccy(inst: dict, side: str) -> str:
        if inst["instType"] == "SPOT":
            # OKX spot charges the fee in the currency received.
            return inst["baseCcy"] if side == "buy" else inst["quoteCcy"]
        return inst["settleCcy"]

    def _apply_fill(
        self,
        order: dict,
        qty: Decimal,
        price: Decimal,
        *,
        maker: bool,
        quote_sized: bool = False,
    ) -> None:
        """Fill ``qty`` (base units for spot, contracts for swaps) at ``price``."""
        inst = self._instruments[order["instId"]]
        now = str(self.now_ms())
        prev = Decimal(order["accFillSz"])
        prev_avg = _dec(order["avgPx"]) or Decimal(0)
        filled = prev + qty
        avg = (prev_avg * prev + price * qty) / filled if filled > 0 else price
        rate = _FEES["SPOT" if inst["instType"] == "SPOT" else "SWAP"]["maker" if maker else "taker"]
        if inst["instType"] == "SPOT":
            fee = qty * rate if order["side"] == "buy" else qty * price * rate
        else:
            fee = qty * Decimal(inst["ctVal"]) * price * rate
        order["accFillSz"] = _fmt(filled)
        order["avgPx"] = _fmt(avg)
        order["fillPx"] = _fmt(price)
        order["fillSz"] = _fmt(qty)
        order["fillTime"] = now
        order["tradeId"] = str(next(self._trade_ids))
        order["fee"] = _fmt(Decimal(order["fee"]) - fee)
        if quote_sized or filled >= Decimal(order["sz"]):
            order["state"] = "filled"
        else:
            order["state"] = "partially_filled"
        order["uTime"] = now

    def _cancel(self, order: dict, source: str = "") -> None:
        order["state"] = "canceled"
        order["cancelSource"] = {"": "1", "post_only": "31", "ioc": "32"}.get(source, "1")
        order["uTime"] = str(self.now_ms())

    def _lookup(self, api_key: str, inst_id: str, ord_id: str | None, cl: str | None):
        """By ordId, or the latest order of ``inst_id`` with clOrdId ``cl`` (OKX: "If
        the clOrdId is associated with multiple orders, only the latest one will be
        returned")."""
        acct = self._accounts[api_key]
        candidates = [ord_id] if ord_id else reversed(acct.by_cl.get(cl or "", ()))
        for oid in candidates:
            order = acct.orders.get(oid)
            if order is not None and order["instId"] == inst_id:
                return order
        return None

    def _r_get_order(self, req, fault, log):
        inst_id = req.query.get("instId")
        if not inst_id:
            return _err("50014", "instId")
        if inst_id not in self._instruments:
            return _err("51001")
        ord_id, cl = req.query.get("ordId"), req.query.get("clOrdId")
        if not ord_id and not cl:
            return _err("51003")
        with self._lock:
            order = self._lookup(req.api_key, inst_id, ord_id, cl)
            if order is None:
                return _err("51603")
            return _ok([dict(order)])

    def _r_cancel(self, req, fault, log):
        body, error = self._json_body(req)
        if error:
            return error
        single = req.rel_path == "trade/cancel-order"
        items = [body] if single else body
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _err("50002") if body is not None else _err("50000")
        results = []
        now = str(self.now_ms())
        for item in items:
            inst_id, ord_id, cl = (
                item.get("instId"),
                item.get("ordId"),
                item.get("clOrdId"),
            )
            res = {"clOrdId": cl or "", "ordId": ord_id or "", "ts": now}
            if not inst_id:
                res.update(zip(("sCode", "sMsg"), _s_err("51000", "instId")))
            elif inst_id not in self._instruments:
                res.update(zip(("sCode", "sMsg"), _s_err("51001")))
            elif not ord_id and not cl:
                res.update({"sCode": "51003", "sMsg": _ERR["51003"][1]})
            else:
                with self._lock:
                    order = self._lookup(req.api_key, inst_id, ord_id, cl)
                    if order is None:
                        code = "51400"
                    elif order["state"] == "canceled":
                        code = "51401"
                    elif order["state"] == "filled":
                        code = "51402"
                    else:
                        self._cancel(order)
                        self._changed.notify_all()
                        code = "0"
                        res["ordId"], res["clOrdId"] = order["ordId"], order["clOrdId"]
                if code == "0":
                    res.update({"sCode": "0", "sMsg": ""})
                else:
                    res.update(zip(("sCode", "sMsg"), _s_err(code)))
            results.append(res)
        ok = sum(1 for r in results if r["sCode"] == "0")
        if ok == len(results):
            top, msg = "0", ""
        elif ok == 0:
            top, msg = "1", "Operation failed." if single else "All operations failed"
        else:
            top, msg = "2", "Bulk operation partially succeeded"
        return _Reply(200, {"code": top, "data": results, "msg": msg})

    def _list_orders(self, req, states) -> _Reply:
        q = req.query
        if q.get("instId") and q["instId"] not in self._instruments:
            return _err("51001")
        try:
            limit = max(1, min(int(q.get("limit") or 100), 100))
        except ValueError:
            return _err("51000", "limit")
        wanted_states = {q["state"]} if q.get("state") else set(states)
        with self._lock:
            data = [
                dict(o)
                for o in self._accounts[req.api_key].orders.values()
                if o["state"] in wanted_states
                and (not q.get("instType") or o["instType"] == q["instType"])
                and (not q.get("instId") or o["instId"] == q["instId"])
                and (not q.get("ordType") or o["ordType"] in q["ordType"].split(","))
                # OKX pages by ordId: `after` = records earlier than that order
                and (not q.get("after") or int(o["ordId"]) < int(q["after"]))
            ]
        data.sort(key=lambda o: int(o["ordId"]), reverse=True)
        return _ok(data[:limit])

    def _r_pending(self, req, fault, log):
        return self._list_orders(req, ("live", "partially_filled"))

    def _r_history(self, req, fault, log):
        if not req.query.get("instType"):
            return _err("50014", "instType")
        return self._list_orders(req, ("filled", "canceled"))
