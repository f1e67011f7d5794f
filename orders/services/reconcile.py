"""What became of an order whose placement may have reached the exchange.

OKX refuses a repeated client order id only while an order with it is still pending: a
filled market order's id can be used again and places a second order. So the id alone
never makes a re-send safe; the deadline does. Every placement carries one (OKX's
`expTime`, committed on the order before the request leaves), after which OKX processes
nothing of that request. An order looked up by its client order id is therefore
- found: placed (success, with what the exchange says of it);
- absent before its last deadline plus the clock margin: undecided, look again later;
- absent after it: never placed, and only then may it be sent again (or expire).
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.exchanges import get_exchange
from orders.exchanges.base import AccountError, ExchangeError, Execution, OrderTicket, RetryableError
from orders.models import Account, Order, OrderStatus
from orders.selectors import order_get
from orders.services import transitions
from orders.services.access import may_operate_account
from orders.services.audit import audit_record
from orders.services.errors import Invalid, NotFound

logger = logging.getLogger(__name__)


def ticket_for(order: Order) -> OrderTicket:
    return OrderTicket(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        order_type=order.order_type,
        amount=order.amount,
        amount_unit=order.amount_unit,
        price=order.price,
        leverage=order.leverage,
        margin_mode=order.margin_mode or order.account.margin_mode,
        reduce_only=order.reduce_only,
    )


def deadline_from_ms(deadline_ms: int) -> datetime:
    return datetime.fromtimestamp(deadline_ms / 1000, tz=UTC)


def deadline_passed(order: Order, exchange) -> bool:
    """Whether the exchange can no longer process any placement request of the order:
    its last deadline plus the clock margin is behind the exchange's clock. An order
    with no deadline was never sent."""
    if order.deadline_at is None:
        return True
    margin_ms = settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"] * 1000
    return exchange.exchange_time_ms() > order.deadline_at.timestamp() * 1000 + margin_ms


def seconds_to_deadline(order: Order, exchange) -> float:
    if order.deadline_at is None:
        return 0.0
    margin_ms = settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"] * 1000
    return max(0.0, (order.deadline_at.timestamp() * 1000 + margin_ms - exchange.exchange_time_ms()) / 1000)


@dataclass(frozen=True)
class LookUp:
    """The outcome of one look-up: `execution` when found; else `final` says whether
    "absent" is final (the deadline has passed) or the order may still appear."""

    execution: Execution | None
    final: bool = False


def look_up(order: Order, exchange) -> LookUp:
    """Look the order up by client order id (OKX returns the latest order with it)."""
    found = exchange.fetch_order(ticket_for(order))
    if found is not None:
        return LookUp(found)
    # The clock is read after the look-up: an order absent at a moment when its deadline
    # had already passed can no longer appear.
    return LookUp(None, final=deadline_passed(order, exchange))


def look_up_many(orders: list[Order], exchange) -> dict[int, LookUp]:
    """Look orders up by client order id, by order pk: one look-up for one order; for
    several, the account's open orders and its latest order history (a few requests
    however many orders: the drainer is the account's only sender, so its latest orders
    are these). Absent from both is final once each one's deadline has passed."""
    if len(orders) == 1:
        return {orders[0].pk: look_up(orders[0], exchange)}
    listed = exchange.fetch_orders([ticket_for(order) for order in orders])
    return {
        order.pk: LookUp(listed[order.client_order_id])
        if order.client_order_id in listed
        else LookUp(None, final=deadline_passed(order, exchange))
        for order in orders
    }


def fill_fields(execution: Execution) -> dict:
    """The order's columns for what the exchange says of it: state, fills, fee."""
    return dict(
        exchange_state=execution.state,
        filled_amount=execution.filled_amount,
        average_price=execution.average_price,
        fee=execution.fee,
        fee_currency=execution.fee_currency,
    )


def _placed_fields(execution: Execution) -> dict:
    return dict(order_id=execution.order_id, **fill_fields(execution), error_code="", error_message="")


def record_placed_many(placed: list[tuple[Order, Execution]], *, actor=transitions.WORKER) -> None:
    """record_placed for the orders of one batch: one transaction, a few statements."""
    # Cancelled by the exchange with nothing filled: they fail, one by one (rare).
    unfilled = {o.pk for o, e in placed if e.state == "cancelled" and not e.filled_amount}
    rest = [(o, e) for o, e in placed if o.pk not in unfilled]
    if len(rest) <= 1:
        for order, execution in placed:
            record_placed(order, execution, actor=actor)
        return
    for order, execution in placed:
        if order.pk in unfilled:
            record_placed(order, execution, actor=actor)
    with transaction.atomic():
        moved = transitions.finish_many(
            [order for order, _ in rest],
            OrderStatus.SUCCESS,
            actor=actor,
            fields={order.pk: _placed_fields(execution) for order, execution in rest},
        )
        if moved:
            Account.objects.filter(pk=moved[0].account_id).update(last_success_at=timezone.now())
    if any(execution.state == "submitted" for _, execution in rest):
        _track_soon(rest[0][0].account_id)


def _track_soon(account_id: str) -> None:
    from orders.services.tracking import TRACK_SOON, request_tracking

    request_tracking(account_id=account_id, within=TRACK_SOON)


def record_placed(order: Order, execution: Execution, *, actor=transitions.WORKER, reason: str = "") -> bool:
    """The order is on the exchange: success with what the exchange says of it (an
    order the exchange already cancelled with nothing filled fails instead)."""
    fields = _placed_fields(execution)
    details = {"exchange_order_id": execution.order_id, "exchange_state": execution.state}
    if execution.state == "cancelled" and not execution.filled_amount:
        del fields["error_code"], fields["error_message"]
        return record_failed(
            order,
            code="exchange_cancelled",
            message="The exchange cancelled the order; nothing was filled.",
            actor=actor,
            **fields,
        )
    with transaction.atomic():  # one transaction with the account's last success
        moved = transitions.move(order, OrderStatus.SUCCESS, actor=actor, reason=reason, details=details, **fields)
        if moved:
            Account.objects.filter(pk=order.account_id).update(last_success_at=timezone.now())
    if moved and execution.state == "submitted":
        _track_soon(order.account_id)
    return moved


def record_failed(
    order: Order, *, code: str, message: str, actor=transitions.WORKER, only_from=None, extra=None, **fields
) -> bool:
    moved = transitions.move(
        order,
        OrderStatus.FAILED,
        actor=actor,
        only_from=only_from,
        extra=extra,
        reason=message,
        details={"error_code": code},
        error_code=code,
        error_message=message,
        **fields,
    )
    if moved:
        Account.objects.filter(pk=order.account_id).update(
            last_error_at=timezone.now(), last_error=f"{code} {message}".strip()
        )
    return moved


# --- settlement by an operator ------------------------------------------------------------


class SettleError(transitions.TransitionError):
    """The settlement is refused; the message says why and nothing changed."""


class SettleNotFound(NotFound):
    """No such order, or one on an account the user may not operate."""


class SettleInvalid(Invalid):
    """The operator's statement cannot be right (e.g. the exchange does not know the id):
    an error of the request's exchange_order_id field."""

    def __init__(self, message: str):
        super().__init__(message, {"exchange_order_id": [message]})


def order_settle(*, request_id: str, placed: bool, exchange_order_id: str = "", user=None, source: str = "") -> Order:
    """An operator states what became of an order whose outcome is unknown (its account
    is usually paused for this): "not placed" fails it; "placed as <exchange order id>"
    looks that order up on the exchange and records it as a success. Audited."""
    order = order_get(request_id=request_id)
    if order is None or not may_operate_account(user, order.account_id):
        raise SettleNotFound(f"No order '{request_id}'.")
    if order.status != OrderStatus.UNKNOWN:
        raise SettleError(
            f"Order {request_id} is {order.status}: only an order whose outcome is unknown can be settled."
        )
    actor = transitions.person(user, operator=True)
    exchange = get_exchange(order.account)
    who = getattr(user, "username", "") or source or "an operator"
    if placed:
        exchange_order_id = exchange_order_id.strip()
        if not exchange_order_id:
            raise SettleInvalid("Give the exchange's order id of the placed order.")
        try:
            execution = exchange.fetch_order_by_id(ticket_for(order), exchange_order_id)
        except (RetryableError, AccountError, ExchangeError) as exc:
            raise SettleError(f"The exchange could not be asked: {exc.message}") from None
        if execution is None:
            raise SettleInvalid(f"The exchange does not know an order '{exchange_order_id}' for {order.symbol}.")
        if not record_placed(order, execution, actor=actor, reason=f"Settled by {who}: placed as {exchange_order_id}"):
            raise SettleError(f"Order {request_id} changed meanwhile; look at it again.")
    else:
        if not deadline_passed(order, exchange):
            raise SettleError(
                f"Order {request_id} may still be processed by the exchange until {order.deadline_at:%H:%M:%S} UTC "
                "(its request deadline plus the clock margin); settle it after that."
            )
        message = f"Settled by {who}: not placed on the exchange."
        if not record_failed(order, code="settled_not_placed", message=message, actor=actor):
            raise SettleError(f"Order {request_id} changed meanwhile; look at it again.")
    audit_record(
        action="settle",
        user=user,
        source=source,
        target=request_id,
        changes={"status": f"unknown -> {'success' if placed else 'failed'}", "exchange_order_id": exchange_order_id},
    )
    return Order.objects.select_related("account", "retry_of").get(pk=order.pk)
