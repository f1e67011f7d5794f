"""OKX through ccxt: `demo` (OKX demo trading, ccxt's sandbox mode) and `live` accounts.

One client per account and process, reused: markets are loaded once and refreshed every
MARKETS_TTL seconds, not per order. ccxt's own retry stays off: a blind re-send after an
ambiguous failure is exactly how duplicate orders happen. Every ccxt error is mapped to
one of the classes of orders.exchanges.base by the OKX code it carries, or, for
transport errors, by whether the request can have left this machine.

Every placement carries a deadline in OKX's `expTime` header (unix ms on OKX's clock):
OKX does not process the request after it, so once the deadline has passed an order
that is absent is absent for good. ccxt does not send that header; the small client
subclasses below add it in `sign()`. OKX's clock is the local clock plus an offset
measured from `public/time` whenever markets are (re)loaded and after OKX says our
clock is off (50102) or a deadline had already passed on arrival (50036).

Account options (accounts file, "options"):
  position_mode: "net" (default) or "long_short" (posSide is sent for swaps)
  market_types:  ["spot", "swap"] (default) the market types loaded
  timeout_ms:    per request (default: ORDER_SCHEDULER_EXCHANGE_TIMEOUT, 10 s)
"""

import json
import os
import re
import threading
import time
from decimal import ROUND_DOWN, Decimal

import ccxt
import requests
import urllib3
from django.conf import settings

from orders.exchanges.base import (
    AccountError,
    AmbiguousError,
    ExchangeError,
    Execution,
    FinalError,
    MarketInfo,
    NotPlacedError,
    OrderTicket,
    RetryableError,
)
from orders.models import Account, AccountMode, AmountUnit

MARKETS_TTL = 3600.0
HISTORY_PAGES = 5  # pages of OKX's order history read back by fetch_orders
# The paths OKX honours expTime on (place order(s), amend order(s)).
PLACEMENT_PATHS = frozenset({"trade/order", "trade/batch-orders", "trade/amend-order", "trade/amend-batch-orders"})


class _ExpTimeHeader:
    """Adds OKX's `expTime` header to placement requests when a deadline is set for the
    current call. The deadline is thread-local, so a look-up made meanwhile on another
    thread never carries it. The header is not part of OKX's signed prehash: it is added
    after ccxt has signed the request, and the body is untouched."""

    def __init__(self, config=None):
        super().__init__(config or {})
        self.deadline = threading.local()

    def sign(self, path, api=("public",), method="GET", params=None):
        signed = super().sign(path, api, method, {} if params is None else params)
        deadline_ms = getattr(self.deadline, "ms", None)
        if deadline_ms is not None and api[0] == "private" and method == "POST" and path in PLACEMENT_PATHS:
            signed["headers"] = {**signed["headers"], "expTime": str(int(deadline_ms))}
        return signed


class OkxClient(_ExpTimeHeader, ccxt.okx):
    pass


class MyOkxClient(_ExpTimeHeader, ccxt.myokx):
    pass


class OkxUsClient(_ExpTimeHeader, ccxt.okxus):
    pass


CLIENT_CLASSES = {"www.okx.com": OkxClient, "eea.okx.com": MyOkxClient, "us.okx.com": OkxUsClient}

# OKX codes that say the request placed nothing: refused before or instead of processing.
NOT_PLACED_CODES = {
    "50001": "The exchange is under maintenance",
    "50011": "Rate limit reached",
    "50036": "The order's deadline had already passed when it reached OKX; not placed",
    "50037": "The order's deadline passed before OKX processed it; not placed",
    "50061": "Order rate limit reached",
    "50102": "Request timestamp expired (check the server clock)",
}
# OKX codes that leave a placement's outcome open: look the order up before anything else.
AMBIGUOUS_CODES = {
    "50004": "The exchange timed out; the order may or may not have been placed",
    "50013": "The exchange was busy; the order may or may not have been placed",
    "50026": "The exchange had a system error; the order may or may not have been placed",
    "51016": "Duplicated client order id: an order with this id is live on the exchange",
    "51054": "The exchange timed out; the order may or may not have been placed",
    "51149": "The order timed out at the exchange; it may or may not have been placed",
}
# On calls that place nothing (look-ups, cancels, leverage) these only mean "try later".
TRANSIENT_CODES = {"50013", "50026"}
# After these OKX's clock is measured again: ours or our offset is off.
CLOCK_CODES = {"50036", "50102"}
FINAL_HINTS = {
    "50101": "API key does not match the environment (demo key on live or the reverse)",
    "50105": "Wrong API passphrase",
    "50111": "Invalid API key",
    "50113": "Invalid signature (wrong API secret)",
    "50119": "API key not found on this OKX site (check the account's hostname)",
    "51001": "Unknown instrument on OKX",
    "51008": "Insufficient balance",
    "51020": "Amount below the instrument's minimum",
    "51121": "Amount is not a multiple of the lot size",
}
# Codes that make the whole account unusable until an operator acts (credentials, site).
ACCOUNT_CODES = {"50100", "50101", "50103", "50104", "50105", "50106", "50107", "50108", "50109", "50110", "50111",
                 "50112", "50113", "50114", "50119"}  # fmt: skip
STATES = {"live": "open", "partially_filled": "partially_filled", "filled": "filled", "canceled": "cancelled",
          "mmp_canceled": "cancelled"}  # fmt: skip
_CODE_RE = re.compile(r'"s?[cC]ode"\s*:\s*"(\d+)"')


class OkxExchange:
    def __init__(self, account: Account):
        self.account_id = account.id
        options = account.options or {}
        self._secrets = [
            os.environ.get(name, "") for name in (account.api_key_env, account.secret_env, account.passphrase_env)
        ]
        if not all(self._secrets):
            raise AccountError(f"Account {account.id} has no API credentials configured", code="config")
        self.position_mode = options.get("position_mode", "net")
        default_ms = settings.ORDER_SCHEDULER["EXCHANGE_TIMEOUT"] * 1000
        self.timeout_seconds = int(options.get("timeout_ms", default_ms)) / 1000
        client_class = CLIENT_CLASSES.get(account.hostname, OkxClient)
        config = {
            "apiKey": self._secrets[0],
            "secret": self._secrets[1],
            "password": self._secrets[2],
            "timeout": int(self.timeout_seconds * 1000),
            # OKX's own limits pace placements (orders.services.pacing); ccxt's generic
            # throttle (a fixed gap between any two requests) would cap an account far below them.
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": list(options.get("market_types", ["spot", "swap"]))},
                "maxRetriesOnFailure": 0,
            },
        }
        self.client = client_class(config)
        if account.hostname:
            self.client.hostname = account.hostname
        if account.base_url:
            # Replaces the REST base completely, in normal and sandbox mode alike.
            self.client.urls["api"]["rest"] = account.base_url
            self.client.urls["test"]["rest"] = account.base_url
        if account.mode == AccountMode.DEMO:
            self.client.set_sandbox_mode(True)
        self._markets_at = 0.0
        self._clock_offset_ms = 0  # OKX's clock minus ours
        self._leverage: dict[tuple, int] = {}
        self._lock = threading.Lock()

    # --- markets ----------------------------------------------------------------------

    def load_markets(self, *, force: bool = False) -> list[MarketInfo] | None:
        """Load (or refresh, when due) the markets; returns them when (re)loaded."""
        with self._lock:
            if not force and self._markets_at and time.monotonic() - self._markets_at < MARKETS_TTL:
                return None
            self._measure_clock()
            self._call(self.client.load_markets, True)
            self._markets_at = time.monotonic()
            return [self._market_info(m) for m in self.client.markets.values()]

    @staticmethod
    def _market_info(market: dict) -> MarketInfo:
        contract_size = Decimal(str(market["contractSize"])) if market.get("contract") else None
        step = market.get("precision", {}).get("amount")
        minimum = (market.get("limits", {}).get("amount") or {}).get("min")
        scale = contract_size or Decimal(1)
        return MarketInfo(
            symbol=market["symbol"],
            min_amount=Decimal(str(minimum)) * scale if minimum is not None else None,
            amount_step=Decimal(str(step)) * scale if step is not None else None,
            contract_size=contract_size,
        )

    def _ensure_markets(self) -> None:
        if not self._markets_at:
            self.load_markets()

    # --- OKX's clock --------------------------------------------------------------------

    def exchange_time_ms(self) -> int:
        """OKX's clock now (unix ms): ours plus the offset measured with the markets
        (so the first call loads them, and may raise RetryableError if OKX cannot be
        reached)."""
        self._ensure_markets()
        return int(time.time() * 1000) + self._clock_offset_ms

    def _measure_clock(self) -> None:
        """The offset of OKX's clock from ours, from public/time (half the round trip
        is taken as the one-way delay). ccxt signs with it too (its timeDifference),
        so a skewed local clock does not get 50102."""
        before = time.time() * 1000
        server_ms = self._call(self.client.fetch_time)
        after = time.time() * 1000
        self._clock_offset_ms = int(server_ms - (before + after) / 2)
        self.client.options["timeDifference"] = -self._clock_offset_ms

    def _remeasure_clock(self) -> None:
        try:
            self._measure_clock()
        except ExchangeError:
            pass  # the next load or refusal measures again; the refusal is what matters

    # --- orders -------------------------------------------------------------------------

    def _order_args(self, ticket: OrderTicket) -> tuple:
        """create_order's arguments for the ticket, after its leverage step (set only
        when it differs from what this client last set)."""
        market = self._market(ticket.symbol)
        amount = self._exchange_amount(ticket, market)
        params = {"clientOrderId": ticket.client_order_id}
        if market.get("contract"):
            params["tdMode"] = ticket.margin_mode
            if ticket.reduce_only:
                params["reduceOnly"] = True
            pos_side = self._pos_side(ticket)
            if pos_side:
                params["posSide"] = pos_side
            if ticket.leverage:
                self._set_leverage(ticket, pos_side)
        else:
            params["tdMode"] = "cash"
        price = float(ticket.price) if ticket.price is not None else None
        return ticket.symbol, ticket.order_type, ticket.side, amount, price, params

    def place_orders(self, tickets: list[OrderTicket], *, deadline_ms: int) -> list:
        """Up to 20 orders in one trade/batch-orders request, with one expTime. OKX
        places them in turn; each member's sCode is its own outcome: an Execution, or
        the error a single placement would have raised. Raises for the request as a
        whole (NotPlacedError: nothing placed; AmbiguousError: any member may be)."""
        self._ensure_markets()
        requests = []
        outcomes: list = [None] * len(tickets)
        for n, ticket in enumerate(tickets):
            try:
                requests.append((n, self.client.create_order_request(*self._order_args(ticket))))
            except ExchangeError as exc:  # refused here (below the minimum, leverage not set)
                outcomes[n] = exc
            except ccxt.BaseError as exc:
                outcomes[n] = self._classify(exc)
        if not requests:
            return outcomes
        items = self._placing(deadline_ms, self._send_batch, [request for _, request in requests])
        for (n, _), item in zip(requests, items, strict=False):
            outcomes[n] = self._batch_outcome(item)
        for n, outcome in enumerate(outcomes):
            if outcome is None:  # OKX answered for fewer orders than it was sent
                outcomes[n] = AmbiguousError("OKX's batch reply left this order out", code="unexpected")
        return outcomes

    def _send_batch(self, body: list) -> list:
        """The batch reply's items. ccxt raises when every member failed (code 1), with
        OKX's reply in its text: each member's own sCode is taken from there."""
        try:
            return self.client.privatePostTradeBatchOrders(body).get("data") or []
        except ccxt.BaseError as exc:
            items = _reply_items(str(exc))
            if not items or not all(isinstance(item, dict) and item.get("sCode") for item in items):
                raise
            return items

    def _batch_outcome(self, item: dict):
        code = str(item.get("sCode", ""))
        if code == "0":
            return Execution(order_id=str(item.get("ordId")), state="submitted")
        # The exception ccxt raises for this code on a single placement, classified alike.
        error_class = self.client.exceptions["exact"].get(code, ccxt.ExchangeError)
        return self._classify(error_class(json.dumps({"code": "1", "data": [item], "msg": ""})), placing=True)

    def place_order(self, ticket: OrderTicket, *, deadline_ms: int) -> Execution:
        """Send the order once, with OKX's expTime = `deadline_ms` (OKX's clock)."""
        self._ensure_markets()
        placed = self._placing(deadline_ms, self.client.create_order, *self._order_args(ticket))
        # The place reply says nothing of fills; they are fetched by the tracker, beside
        # the drainer, so the account's next order does not wait for that round trip.
        return Execution(order_id=str(placed["id"]), state="submitted")

    def _placing(self, deadline_ms: int, call, *args):
        """A placement request carrying OKX's expTime = `deadline_ms` (OKX's clock)."""
        self.client.deadline.ms = deadline_ms
        try:
            return self._call(call, *args, placing=True)
        finally:
            self.client.deadline.ms = None

    def fetch_order(self, ticket: OrderTicket) -> Execution | None:
        return self._fetch(ticket, None, {"clientOrderId": ticket.client_order_id})

    def fetch_order_by_id(self, ticket: OrderTicket, order_id: str) -> Execution | None:
        """The order by OKX's ordId, or None when OKX does not know it."""
        return self._fetch(ticket, str(order_id), {})

    def _fetch(self, ticket: OrderTicket, order_id: str | None, params: dict) -> Execution | None:
        self._ensure_markets()
        market = self._market(ticket.symbol)
        try:
            found = self._call(self.client.fetch_order, order_id, ticket.symbol, params)
        except _NotFound:
            return None
        return self._execution(found, ticket, market)

    def fetch_orders(self, tickets: list[OrderTicket]) -> dict[str, Execution]:
        """Those of `tickets` among the account's open orders and its latest finished
        ones, by client order id: one request for the open orders and, per market type,
        OKX's order history newest first, a page of up to 100 at a time while some are
        still missing (at most HISTORY_PAGES): a few requests however many tickets
        (rate-limit friendly). The caller looks up the others one by one."""
        self._ensure_markets()
        wanted = {t.client_order_id: t for t in tickets}
        listed = list(self._call(self.client.fetch_open_orders))
        missing = set(wanted) - {order.get("clientOrderId") for order in listed}
        # The tickets are the account's latest orders but for those placed meanwhile.
        limit = min(100, len(tickets) + 20)
        for market_type in sorted({self._market(t.symbol)["type"] for t in tickets}):
            params = {"type": market_type}
            for _ in range(HISTORY_PAGES):
                page = self._call(self.client.fetch_closed_orders, None, None, limit, params)
                listed += page
                missing -= {order.get("clientOrderId") for order in page}
                if not missing or len(page) < limit:
                    break
                # ccxt sorts a page oldest first: page on from its oldest order.
                params = {"type": market_type, "after": min((order["id"] for order in page), key=int)}
                limit = 100
        found = {}
        for order in listed:
            ticket = wanted.get(order.get("clientOrderId"))
            if ticket is not None and ticket.client_order_id not in found:
                found[ticket.client_order_id] = self._execution(order, ticket, self._market(ticket.symbol))
        return found

    def cancel_order(self, ticket: OrderTicket, order_id: str) -> Execution:
        self._ensure_markets()
        market = self._market(ticket.symbol)
        try:
            self._call(self.client.cancel_order, order_id, ticket.symbol)
        except _NotFound:
            pass  # already filled or cancelled: the look-up below says which
        return self._execution(self._call(self.client.fetch_order, order_id, ticket.symbol), ticket, market)

    # --- helpers ------------------------------------------------------------------------

    def _market(self, symbol: str) -> dict:
        market = (self.client.markets or {}).get(symbol)
        if market is None:
            raise FinalError(f"Unknown symbol on OKX: {symbol}", code="51001")
        return market

    def _exchange_amount(self, ticket: OrderTicket, market: dict) -> float:
        """The order's size in OKX's unit: contracts for swaps and futures, base currency
        for spot; rounded down to the lot size (never more than asked)."""
        amount = ticket.amount
        if market.get("contract") and ticket.amount_unit == AmountUnit.BASE:
            amount = amount / Decimal(str(market["contractSize"]))
        step = market.get("precision", {}).get("amount")
        if step:
            step = Decimal(str(step))
            amount = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
        minimum = (market.get("limits", {}).get("amount") or {}).get("min")
        if amount <= 0 or (minimum is not None and amount < Decimal(str(minimum))):
            unit = "contracts" if market.get("contract") else market["base"]
            raise FinalError(f"Amount below the market minimum of {minimum} {unit}", code="51020")
        return float(amount)

    def _pos_side(self, ticket: OrderTicket) -> str | None:
        if self.position_mode != "long_short":
            return None
        opening_long = (ticket.side == "buy") != ticket.reduce_only
        return "long" if opening_long else "short"

    def _set_leverage(self, ticket: OrderTicket, pos_side: str | None) -> None:
        key = (ticket.symbol, ticket.margin_mode, pos_side or "net")
        if self._leverage.get(key) == ticket.leverage:
            return
        params = {"marginMode": ticket.margin_mode}
        if pos_side and ticket.margin_mode == "isolated":
            params["posSide"] = pos_side
        try:
            self._call(self.client.set_leverage, ticket.leverage, ticket.symbol, params)
        except AmbiguousError as exc:
            # Setting leverage places nothing: an unclear answer is a retry, not a mystery.
            raise NotPlacedError(f"Setting leverage failed: {exc.message}", code=exc.code) from None
        self._leverage[key] = ticket.leverage

    def _execution(self, order: dict, ticket: OrderTicket, market: dict) -> Execution:
        info = order.get("info") or {}
        filled = order.get("filled")
        if filled is not None and market.get("contract") and ticket.amount_unit == AmountUnit.BASE:
            filled = Decimal(str(filled)) * Decimal(str(market["contractSize"]))
        fee = order.get("fee") or {}
        return Execution(
            order_id=str(order.get("id") or info.get("ordId")),
            state=STATES.get(info.get("state"), info.get("state") or "submitted"),
            filled_amount=_decimal(filled),
            average_price=_decimal(order.get("average")),
            fee=_decimal(fee.get("cost")),
            fee_currency=fee.get("currency") or "",
        )

    def _call(self, method, *args, placing: bool = False):
        try:
            return method(*args)
        except ccxt.OrderNotFound:
            raise _NotFound() from None
        except ccxt.BaseError as exc:
            error = self._classify(exc, placing=placing)
        except Exception as exc:
            if not placing:
                raise
            # A failure inside ccxt after sending (e.g. parsing the reply) says nothing
            # of whether OKX placed the order.
            error = AmbiguousError(f"Unexpected failure while placing: {type(exc).__name__}", code="unexpected")
        if error.code in CLOCK_CODES:
            self._remeasure_clock()
        raise error from None

    def _classify(self, exc: Exception, *, placing: bool = False) -> ExchangeError:
        """One of base's classes. On a placement (`placing`): NotPlacedError only when
        OKX (or the socket) says nothing was processed, AmbiguousError whenever it may
        have been, FinalError for refusals ccxt recognises."""
        code, detail = _okx_code(str(exc))
        text = self._scrub(detail or _transport_summary(exc))
        if code in NOT_PLACED_CODES:
            return NotPlacedError(f"{NOT_PLACED_CODES[code]}: {text}", code=code)
        if code in TRANSIENT_CODES and not placing:
            return RetryableError(f"{AMBIGUOUS_CODES[code].split(';')[0]}: {text}", code=code)
        if code in AMBIGUOUS_CODES:
            return AmbiguousError(f"{AMBIGUOUS_CODES[code]}: {text}", code=code)
        if code:
            hint = FINAL_HINTS.get(code)
            message = f"{hint}: {text}" if hint and hint not in text else text
            if code in ACCOUNT_CODES or isinstance(exc, ccxt.AuthenticationError):
                return AccountError(f"Account {self.account_id}: {message}", code=code)
            if placing and type(exc) in _UNRECOGNISED:
                # A code neither we nor ccxt know: it might have been processed.
                return AmbiguousError(
                    f"Unexpected answer from OKX; the order may have been placed: {message}", code=code
                )
            return FinalError(message, code=code)
        if isinstance(exc, ccxt.NetworkError):
            if _never_sent(exc):
                return NotPlacedError(f"Could not connect to OKX: {text}", code="connect")
            if isinstance(exc, ccxt.RequestTimeout):
                return AmbiguousError(f"No reply from OKX in time: {text}", code="timeout")
            return AmbiguousError(f"Connection to OKX lost: {text}", code="network")
        if isinstance(exc, ccxt.AuthenticationError):
            return AccountError(f"Authentication failed for account {self.account_id}: {text}", code="auth")
        if placing and type(exc) in _UNRECOGNISED:
            return AmbiguousError(
                f"Unexpected answer from OKX; the order may have been placed: {text}", code="unexpected"
            )
        return FinalError(text or type(exc).__name__, code=type(exc).__name__)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


class _NotFound(Exception):
    pass


# ccxt's classes for an answer it did not recognise (any specific class, such as
# InvalidOrder or InsufficientFunds, means OKX refused the order).
_UNRECOGNISED = (ccxt.ExchangeError, ccxt.OperationFailed, ccxt.BadResponse, ccxt.NullResponse)


def _decimal(value) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _reply_items(message: str) -> list | None:
    """The `data` list of the OKX reply in a ccxt error text, if there is one."""
    start = message.find("{")
    try:
        return json.loads(message[start:]).get("data") if start >= 0 else None
    except (ValueError, AttributeError):
        return None


def _okx_code(message: str) -> tuple[str, str]:
    """The OKX code and message in a ccxt error text ('okx {"code":"1","data":[...]}')."""
    start = message.find("{")
    if start < 0:
        return "", ""
    try:
        body = json.loads(message[start:])
    except ValueError:
        match = _CODE_RE.search(message)
        return (match.group(1), "") if match else ("", "")
    for item in body.get("data") or []:
        if isinstance(item, dict) and item.get("sCode") not in (None, "", "0"):
            return str(item["sCode"]), str(item.get("sMsg", ""))
    code = str(body.get("code", ""))
    return ("" if code in ("", "0") else code), str(body.get("msg", ""))


def _never_sent(exc: BaseException) -> bool:
    """True when the connection could not be opened: the request never left."""
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen or current is None:
            continue
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                                requests.exceptions.ConnectTimeout, ConnectionRefusedError)):  # fmt: skip
            return True
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return False


def _transport_summary(exc: Exception) -> str:
    # ccxt's text is "okx POST <url>": keep the method and path, not the host details.
    return re.sub(r"https?://[^/\s]+", "", str(exc)).strip()
