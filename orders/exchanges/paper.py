"""Paper trading: a simulated venue that never touches the network.

Its book lives in the PaperOrder table so that every worker process sees the same
venue, and it keeps OKX's rules: a client order id is refused only while an earlier
order with it is still open (its orders fill at once, so a repeated id places a second
order, as on OKX), a look-up by client order id returns the latest order with it, and a
request processed after its deadline (OKX's expTime) places nothing.

Account options (accounts file, "options"):
  reference_prices: {"BTC/USDT:USDT": 65000, ...}  market orders fill at this price
  latency_ms: 0                                      simulated exchange round trip
  max_amount: null                                   larger orders are refused
                                                     (simulates insufficient funds)
"""

import itertools
import os
import time
from decimal import Decimal

from django.db import transaction

from orders.exchanges.base import AmbiguousError, Execution, FinalError, MarketInfo, NotPlacedError, OrderTicket
from orders.models import RESTING_STATES, Account, PaperOrder

_ids = itertools.count(1)


class PaperExchange:
    def __init__(self, account: Account):
        options = account.options or {}
        self.account_id = account.id
        self.prices = {k: Decimal(str(v)) for k, v in (options.get("reference_prices") or {}).items()}
        self.latency = float(options.get("latency_ms") or 0) / 1000
        self.timeout_seconds = self.latency + 1.0  # the simulated round trip and its rows
        max_amount = options.get("max_amount")
        self.max_amount = Decimal(str(max_amount)) if max_amount is not None else None

    def load_markets(self, *, force: bool = False) -> list[MarketInfo] | None:
        return None  # the paper venue trades whatever it is asked to

    def exchange_time_ms(self) -> int:
        return int(time.time() * 1000)

    def place_order(self, ticket: OrderTicket, *, deadline_ms: int) -> Execution:
        [result] = self.place_orders([ticket], deadline_ms=deadline_ms)
        if isinstance(result, Exception):
            raise result
        return result

    def place_orders(self, tickets: list[OrderTicket], *, deadline_ms: int) -> list:
        """A batch, as one request: one write to the book for all its orders, each with its
        own outcome (an Execution or the error a single placement would have raised),
        then one round trip of latency for them all."""
        started = time.time()
        with transaction.atomic():
            live = set(
                self._book()
                .filter(client_order_id__in=[t.client_order_id for t in tickets], state__in=RESTING_STATES)
                .values_list("client_order_id", flat=True)
            )
            results = [self._take(ticket, started=started, deadline_ms=deadline_ms, live=live) for ticket in tickets]
            rows = PaperOrder.objects.bulk_create([row for row in results if isinstance(row, PaperOrder)])
        if self.latency:
            time.sleep(self.latency)
        if rows:
            PaperOrder.objects.filter(pk__in=[row.pk for row in rows]).update(finished=time.time())
        return [self._execution(result) if isinstance(result, PaperOrder) else result for result in results]

    def _take(self, ticket: OrderTicket, *, started: float, deadline_ms: int, live: set) -> PaperOrder | Exception:
        """The book's row for a placement it accepts, or the error it answers with."""
        if self.max_amount is not None and ticket.amount > self.max_amount:
            return FinalError(
                f"Insufficient balance: paper account allows at most {self.max_amount} per order",
                code="paper_insufficient_funds",
            )
        if started * 1000 > deadline_ms:
            return NotPlacedError("Order expired (processed after its deadline); nothing was placed", code="50037")
        if ticket.client_order_id in live:
            return AmbiguousError("Duplicated client order id", code="51016")  # OKX's 51016: live right now
        return PaperOrder(
            account_id=self.account_id,
            client_order_id=ticket.client_order_id,
            exchange_order_id=f"P{os.getpid()}{int(started * 1000)}{next(_ids)}",
            symbol=ticket.symbol,
            side=ticket.side,
            order_type=ticket.order_type,
            amount=ticket.amount,
            price=ticket.price if ticket.order_type == "limit" else self.prices.get(ticket.symbol),
            state="filled",
            started=started,
            worker_pid=os.getpid(),
        )

    def _book(self):
        return PaperOrder.objects.filter(account_id=self.account_id)

    def fetch_order(self, ticket: OrderTicket) -> Execution | None:
        row = self._book().filter(client_order_id=ticket.client_order_id).order_by("-id").first()
        return self._execution(row) if row else None

    def fetch_order_by_id(self, ticket: OrderTicket, order_id: str) -> Execution | None:
        row = self._book().filter(exchange_order_id=order_id, client_order_id=ticket.client_order_id).first()
        return self._execution(row) if row else None

    def fetch_orders(self, tickets: list[OrderTicket]) -> dict[str, Execution]:
        rows = self._book().filter(client_order_id__in=[t.client_order_id for t in tickets]).order_by("id")
        return {row.client_order_id: self._execution(row) for row in rows}  # the latest wins

    def cancel_order(self, ticket: OrderTicket, order_id: str) -> Execution:
        row = self._book().get(exchange_order_id=order_id)
        return self._execution(row)

    @staticmethod
    def _execution(row: PaperOrder) -> Execution:
        return Execution(
            order_id=row.exchange_order_id,
            state=row.state,
            filled_amount=row.amount,
            average_price=row.price,
            fee=Decimal(0),
            fee_currency="",
        )
