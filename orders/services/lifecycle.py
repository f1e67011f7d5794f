"""What people do to existing orders: cancel and retry. Each checks that the user reaches
the order's account and the order's current status, and refuses, with the reason, what
makes no sense for it (Order.actions() states which of them an order allows, once, for
the services here and for anyone who offers them: the API, the dashboard)."""

from django.db import transaction
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.selectors import order_get
from orders.services import transitions
from orders.services.audit import audit_record
from orders.services.drain import wake_account
from orders.services.errors import DomainError, NotFound
from orders.services.submit import order_submit


class OrderConflict(transitions.TransitionError):
    """The action makes no sense for the order's current status."""


def _reachable(request_id: str, user) -> Order:
    """The order, when the user reaches its account; NotFound otherwise (the same answer
    as for an id nobody used)."""
    order = order_get(request_id=request_id, user=user)
    if order is None:
        raise NotFound(f"No order with request_id '{request_id}'.")
    return order


def order_cancel(*, request_id: str, user=None, source: str = "") -> Order:
    """Cancel a queued order at once (it never reaches the exchange, even when a worker
    is about to take it: whichever conditional UPDATE comes first wins), or ask the
    account's drainer to cancel an order resting on the exchange. Raises NotFound when
    the user does not reach the order, OrderConflict when it cannot be cancelled."""
    order = _reachable(request_id, user)
    if order.status == OrderStatus.QUEUED:
        message = f"Cancelled by {getattr(user, 'username', None) or 'an operator'} before it was sent."
        done = transitions.move(
            order,
            OrderStatus.CANCELLED,
            actor=transitions.person(user),
            only_from=(OrderStatus.QUEUED,),
            reason=message,
            error_code="cancelled",
            error_message=message,
        )
        if done:
            audit_record(
                action="cancel", user=user, source=source, target=request_id, changes={"status": "queued -> cancelled"}
            )
            return order_get(request_id=request_id)
        order.refresh_from_db()  # a worker took it in the meantime
    if order.resting:
        with transaction.atomic():
            Order.objects.filter(pk=order.pk, cancel_requested_at__isnull=True).update(
                cancel_requested_at=timezone.now()
            )
            wake_account(order.account_id)
            audit_record(
                action="cancel", user=user, source=source, target=request_id, changes={"exchange": "cancel requested"}
            )
        return order_get(request_id=request_id)
    if order.status in OrderStatus.in_flight():
        raise OrderConflict(
            f"Order {request_id} is being sent to the exchange ({order.status}); it cannot be cancelled now."
        )
    state = f"{order.status}, {order.exchange_state} on the exchange" if order.exchange_state else order.status
    raise OrderConflict(
        f"Order {request_id} is {state}: only queued orders and orders resting on the book can be cancelled."
    )


def order_retry(*, request_id: str, user=None, source: str = "") -> Order:
    """Submit a failed or expired order again, as a new order linked to the original.
    Refused while an earlier retry of the same order is still alive (a double click
    must not trade twice). Raises NotFound when the user does not reach the order,
    OrderConflict when it cannot be retried."""
    _reachable(request_id, user)
    with transaction.atomic():
        # Row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises
        # writers. Either way two concurrent retries cannot both pass the check below.
        original = Order.objects.select_for_update().select_related("account").get(request_id=request_id)
        if "retry" not in original.actions():
            raise OrderConflict(
                f"Order {request_id} is {original.status}: only failed or expired orders can be retried."
            )
        ended = [OrderStatus.FAILED, OrderStatus.EXPIRED, OrderStatus.CANCELLED]
        alive = original.retries.exclude(status__in=ended).first()
        if alive is not None:
            raise OrderConflict(f"Order {request_id} was already retried as {alive.request_id} ({alive.status}).")
        return _resubmit(original, user=user, source=source)


def _resubmit(original: Order, *, user, source: str) -> Order:
    item = {
        "account_id": original.account_id,
        "symbol": original.symbol,
        "side": original.side,
        "order_type": original.order_type,
        "amount": original.amount,
        "amount_unit": original.amount_unit,
        "price": original.price,
        "leverage": original.leverage,
        "margin_mode": original.margin_mode if ":" in original.symbol else None,
        "reduce_only": original.reduce_only,
        "strategy_name": original.strategy_name,
        "priority": original.priority,
    }
    try:
        result = order_submit(items=[item], user=user, retry_of=original, source=source)
    except DomainError as exc:
        reasons = "; ".join(" ".join(messages) for messages in (exc.errors or {}).values())
        raise OrderConflict(f"Order {original.request_id} cannot be retried: {reasons}") from None
    return result.orders[0]
