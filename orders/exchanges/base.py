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
    """The order cannot have reached the exchange: safe to send again later."""


class AmbiguousError(ExchangeError):
    """The order may or may not be on the exchange: look it up, never resend blindly."""


class FinalError(ExchangeError):
    """The exchange refused the order; sending it again would be refused again."""


class AccountError(FinalError):
    """The account itself is unusable (credentials rejected, wrong site): the order
    fails and the account is paused until an operator acts."""


class Exchange(Protocol):
    # The longest one request to the exchange may take, in seconds (the lease is kept
    # long enough for a step of several of them: orders.services.lease.Lease).
    timeout_seconds: float

    def place_order(self, ticket: OrderTicket) -> Execution: ...

    def fetch_order(self, ticket: OrderTicket) -> Execution | None:
        """The order by client order id, or None when the exchange has no such order."""
        ...

    def fetch_orders(self, tickets: list[OrderTicket]) -> dict[str, Execution]:
        """Those of `tickets` the exchange lists in a few requests (open orders, latest
        filled ones), by client order id; the others may still exist: fetch_order."""
        ...

    def cancel_order(self, ticket: OrderTicket, order_id: str) -> Execution: ...

    def load_markets(self, *, force: bool = False) -> list[MarketInfo] | None:
        """Load or refresh market data when due; the markets when (re)loaded, else None."""
        ...
