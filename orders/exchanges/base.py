"""The one small interface every exchange adapter implements.

The scheduler only ever sees these types: an OrderTicket going out, an Execution coming
back, and one of three error classes that say what may safely happen next.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class OrderTicket:
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    amount: Decimal
    amount_unit: str
    price: Decimal | None
    leverage: int | None
    margin_mode: str
    reduce_only: bool


@dataclass(frozen=True)
class Execution:
    order_id: str
    state: str  # the exchange's view: open, partially_filled, filled, cancelled
    filled_amount: Decimal | None = None
    average_price: Decimal | None = None
    fee: Decimal | None = None
    fee_currency: str = ""


@dataclass(frozen=True)
class MarketInfo:
    symbol: str
    min_amount: Decimal | None  # in the unit the API accepts (base currency)
    amount_step: Decimal | None
    contract_size: Decimal | None  # None for spot


class ExchangeError(Exception):
    """Base class; `code` is the exchange's code (e.g. OKX "51008") or our own label."""

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableError(ExchangeError):
    """The exchange did not place the order, and may accept it later.

    On place_order every RetryableError means "definitely not placed": the request was
    refused before (or instead of) being processed, or never left this machine. The
    drainer may send the same order again, with a new deadline, whenever it likes.
    On the other calls it means the call failed for a reason that may pass: try later.
    """


class NotPlacedError(RetryableError):
    """The exchange says this placement placed nothing: refused before or instead of
    processing (OKX 50036 deadline already past on arrival, 50037 deadline passed
    before processing, 50011 / 50061 rate limits, 50001 maintenance, 50102 timestamp
    expired) or a connection that could not be opened. The drainer may re-send at once
    with a new deadline (after a backoff for rate limits and maintenance)."""


class AmbiguousError(ExchangeError):
    """The placement may or may not have been processed (a timeout after sending, a
    dropped connection, OKX 50004, 50013, 50026, 51149, 51054, 51016, or an error we do
    not know). The drainer must not re-send: it looks the order up (fetch_order), and
    only once the request's deadline plus a clock margin has passed on the exchange's
    clock does "absent" mean "not placed" and a re-send become safe."""


class FinalError(ExchangeError):
    """The exchange refused the order; sending it again would be refused again. The
    drainer fails the order."""


class AccountError(FinalError):
    """The account itself is unusable (credentials rejected, wrong site): the order
    fails and the account is paused until an operator acts."""


class Exchange(Protocol):
    # The longest one request to the exchange may take, in seconds (the lease is kept
    # long enough for a step of several of them: orders.services.lease.Lease).
    timeout_seconds: float

    def place_order(self, ticket: OrderTicket, *, deadline_ms: int) -> Execution:
        """Send the order once. The request carries the deadline `deadline_ms` (unix
        ms on the exchange's clock, see exchange_time_ms; OKX's expTime header): the
        exchange does not process it after that."""
        ...

    def place_orders(self, tickets: list[OrderTicket], *, deadline_ms: int) -> list:
        """Send several orders in one request with one deadline: each its own outcome
        (an Execution, or the error place_order would have raised for it). Raises for
        the request as a whole (RetryableError: nothing placed; AmbiguousError: any may be)."""
        ...

    def exchange_time_ms(self) -> int:
        """The exchange's clock now, in unix ms (the local clock plus the offset last
        measured; the paper exchange: the local clock)."""
        ...

    def fetch_order(self, ticket: OrderTicket) -> Execution | None:
        """The order by client order id, or None when the exchange has no such order.
        When several orders carry the id (a re-send after the first one filled), the
        latest one, as OKX answers."""
        ...

    def fetch_order_by_id(self, ticket: OrderTicket, order_id: str) -> Execution | None:
        """The order by the exchange's own order id (an operator's "placed as <id>"),
        or None when the exchange does not know it."""
        ...

    def fetch_orders(self, tickets: list[OrderTicket]) -> dict[str, Execution]:
        """Those of `tickets` the exchange lists in a few requests (open orders, latest
        filled ones), by client order id; the others may still exist: fetch_order."""
        ...

    def cancel_order(self, ticket: OrderTicket, order_id: str) -> Execution: ...

    def load_markets(self, *, force: bool = False) -> list[MarketInfo] | None:
        """Load or refresh market data when due; the markets when (re)loaded, else None."""
        ...
