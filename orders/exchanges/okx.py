"""OKX through ccxt: `demo` (OKX demo trading, ccxt's sandbox mode) and `live` accounts.

One client per account and process, reused: markets are loaded once and refreshed every
MARKETS_TTL seconds, not per order. ccxt's own retry stays off: a blind re-send after an
ambiguous failure is exactly how duplicate orders happen. Every ccxt error is mapped to
one of three classes (orders.exchanges.base) by the OKX code it carries, or, for
transport errors, by whether the request can have left this machine.

Account options (accounts file, "options"):
  position_mode: "net" (default) or "long_short" (posSide is sent for swaps)
  market_types:  ["spot", "swap"] (default) the market types loaded
  timeout_ms:    10000 (default) per request
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

from orders.exchanges.base import (
    AccountError,
    AmbiguousError,
    ExchangeError,
    Execution,
    FinalError,
    MarketInfo,
    OrderTicket,
    RetryableError,
)
from orders.models import Account, AccountMode, AmountUnit

MARKETS_TTL = 3600.0
CLIENT_CLASSES = {"www.okx.com": ccxt.okx, "eea.okx.com": ccxt.myokx, "us.okx.com": ccxt.okxus}

# OKX codes that say the order was refused before it was taken: safe to send again later.
RETRYABLE_CODES = {
    "50001": "The exchange is under maintenance",
    "50011": "Rate limit reached",
    "50013": "The exchange is busy",
    "50026": "The exchange had a system error",
    "50061": "Order rate limit reached",
    "50102": "Request timestamp expired (check the server clock)",
}
# OKX codes that leave the outcome open: look the order up before anything else.
AMBIGUOUS_CODES = {
    "50004": "The exchange timed out; the order may or may not have been placed",
    "51016": "Duplicated client order id: an earlier send of this order reached the exchange",
}
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
        self.timeout_seconds = int(options.get("timeout_ms", 10000)) / 1000
        client_class = CLIENT_CLASSES.get(account.hostname, ccxt.okx)
        config = {
            "apiKey": self._secrets[0],
            "secret": self._secrets[1],
            "password": self._secrets[2],
            "timeout": int(self.timeout_seconds * 1000),
            "enableRateLimit": True,
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
        self._leverage: dict[tuple, int] = {}
        self._lock = threading.Lock()

    # --- markets ----------------------------------------------------------------------

    def load_markets(self, *, force: bool = False) -> list[MarketInfo] | None:
        """Load (or refresh, when due) the markets; returns them when (re)loaded."""
        with self._lock:
            if not force and self._markets_at and time.monotonic() - self._markets_at < MARKETS_TTL:
                return None
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

    # --- orders -------------------------------------------------------------------------

    def place_order(self, ticket: OrderTicket) -> Execution:
        self._ensure_markets()
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
        placed = self._call(
            self.client.create_order, ticket.symbol, ticket.order_type, ticket.side, amount, price, params
        )
        # The place reply says nothing of fills; they are fetched by the tracker, beside
        # the drainer, so the account's next order does not wait for that round trip.
        return Execution(order_id=str(placed["id"]), state="submitted")

    def fetch_order(self, ticket: OrderTicket) -> Execution | None:
        self._ensure_markets()
        market = self._market(ticket.symbol)
        try:
            found = self._call(self.client.fetch_order, None, ticket.symbol, {"clientOrderId": ticket.client_order_id})
        except _NotFound:
            return None
        return self._execution(found, ticket, market)

    def fetch_orders(self, tickets: list[OrderTicket]) -> dict[str, Execution]:
        """Those of `tickets` among the account's open orders and its latest filled ones,
        by client order id: one request for the open orders and one per market type for
        OKX's order history (newest first, as many as there are tickets and a few more,
        at most 100), whatever the number of tickets (rate-limit friendly). The caller
        looks up the others one by one."""
        self._ensure_markets()
        wanted = {t.client_order_id: t for t in tickets}
        listed = list(self._call(self.client.fetch_open_orders))
        # The tickets are the account's latest orders but for those placed meanwhile.
        limit = min(100, len(tickets) + 20)
        for market_type in sorted({self._market(t.symbol)["type"] for t in tickets}):
            listed += self._call(self.client.fetch_closed_orders, None, None, limit, {"type": market_type})
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
            raise RetryableError(f"Setting leverage failed: {exc.message}", code=exc.code) from None
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

    def _call(self, method, *args):
        try:
            return method(*args)
        except ccxt.OrderNotFound:
            raise _NotFound() from None
        except ccxt.BaseError as exc:
            raise self._classify(exc) from None

    def _classify(self, exc: Exception) -> ExchangeError:
        code, detail = _okx_code(str(exc))
        text = self._scrub(detail or _transport_summary(exc))
        if code in RETRYABLE_CODES:
            return RetryableError(f"{RETRYABLE_CODES[code]}: {text}", code=code)
        if code in AMBIGUOUS_CODES:
            return AmbiguousError(f"{AMBIGUOUS_CODES[code]}: {text}", code=code)
        if code:
            hint = FINAL_HINTS.get(code)
            message = f"{hint}: {text}" if hint and hint not in text else text
            if code in ACCOUNT_CODES or isinstance(exc, ccxt.AuthenticationError):
                return AccountError(f"Account {self.account_id}: {message}", code=code)
            return FinalError(message, code=code)
        if isinstance(exc, ccxt.NetworkError):
            if _never_sent(exc):
                return RetryableError(f"Could not connect to OKX: {text}", code="connect")
            if isinstance(exc, ccxt.RequestTimeout):
                return AmbiguousError(f"No reply from OKX in time: {text}", code="timeout")
            return AmbiguousError(f"Connection to OKX lost: {text}", code="network")
        if isinstance(exc, ccxt.AuthenticationError):
            return AccountError(f"Authentication failed for account {self.account_id}: {text}", code="auth")
        return FinalError(text or type(exc).__name__, code=type(exc).__name__)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


class _NotFound(Exception):
    pass


def _decimal(value) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


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
