"""The drain loop: an account's orders, one request at a time, under its lease.

django-q2 tasks only wake a drainer; the Order table is the queue, so a lost, repeated or
late task can neither lose nor duplicate an order. A drainer first settles what a
previous holder left in flight (orders.services.reconcile: never re-sent before its
last deadline has passed), then takes queued orders by priority, then first in.

Every placement carries a deadline (OKX's expTime) committed on the order, together
with a check that the lease outlives it, in one UPDATE right before the request leaves.
Outcomes:
- placed: success (fills come later from orders.services.tracking);
- refused before processing (rate limit, maintenance, no connection, expTime passed):
  nothing was placed; the order is held and sent again after a back-off, until it
  expires (an outage marks the account degraded, it never fails the order);
- refused for good: failed (credentials or site: the account is paused too);
- anything that may have been processed: `unknown`, looked up by client order id until
  found, or absent after its deadline (then sent again, or expired when too old).
"""

import logging
import math
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from orders.exchanges import get_exchange
from orders.exchanges.base import (
    AccountError,
    AmbiguousError,
    Exchange,
    ExchangeError,
    FinalError,
    RetryableError,
)
from orders.models import Account, Control, Order, OrderStatus
from orders.services import reconcile, transitions
from orders.services.lease import Lease, held_for, new_lease_owner
from orders.services.markets import refresh_markets

logger = logging.getLogger(__name__)

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
# Look-ups that failed for a reason other than an unreachable exchange, before the order
# is left to an operator (its account paused).
LOOKUP_FAILURES = 8
# Sends of one order that came back unclear, before it is left to an operator.
UNCLEAR_SENDS = 3
# Codes that say the exchange cannot be reached or is down: the account is degraded.
OUTAGE_CODES = ("connect", "50001")
# While draining, cancel requests and expired orders are looked at this often (and
# whenever a claim fails); not before every order, which would double its queries.
HOUSEKEEPING_SECONDS = 1.0


def backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))


def wake_account(account_id: str) -> None:
    """Ask a worker to drain the account. With the ORM broker the task row is written in
    the caller's transaction (committed with the order, or not at all, and one commit
    fewer); a Redis broker is not transactional, so the task is pushed after the commit."""
    from django_q.tasks import async_task

    def enqueue():
        async_task("orders.tasks.drain_account", account_id, task_name=f"drain:{account_id}", group="drain")

    if settings.REDIS_URL:
        transaction.on_commit(enqueue)
    else:
        enqueue()


def tradable() -> Q:
    """Accounts that may send orders now: enabled, configured, not paused, and all
    trading not paused. The one statement of that rule, as a condition on Account."""
    return Q(enabled=True, paused=False, config_error="") & ~Exists(Control.objects.filter(trading_paused=True))


def account_can_trade(account_id: str) -> bool:
    return Account.objects.filter(pk=account_id).filter(tradable()).exists()


def drain_account(*, account_id: str, budget_seconds: float | None = None) -> int:
    """Execute the account's queued orders, one at a time, while holding its lease.

    Returns how many orders were taken. Safe to call any number of times from anywhere:
    a caller that cannot get the lease returns at once, and the holder re-checks the
    queue after releasing it, so no wake-up is lost in between.
    """
    from orders.services.tracking import settle_owed_tracking

    if budget_seconds is None:
        budget_seconds = settings.Q_TIMEOUT / 3
    stop_at = time.monotonic() + budget_seconds
    owner = new_lease_owner()
    taken = 0
    while True:
        lease = Lease(account_id=account_id, owner=owner)
        if not lease.acquire():
            return taken
        try:
            taken += _drain_leased(lease=lease, stop_at=stop_at)
        finally:
            lease.release()  # not while a request may still be processed (see Lease)
        settle_owed_tracking(account_id=account_id)
        if not has_runnable_orders(account_id=account_id):
            return taken
        if time.monotonic() >= stop_at:
            # Hand over to a fresh task rather than outliving django-q2's timeout.
            wake_account(account_id)
            return taken


def has_runnable_orders(*, account_id: str) -> bool:
    """Work for a drainer: queued or in-flight orders, or a cancel asked for meanwhile."""
    if not account_can_trade(account_id):
        return False
    work = Q(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()]) | Q(
        status=OrderStatus.SUCCESS, cancel_requested_at__isnull=False
    )
    return Order.objects.filter(account_id=account_id).filter(work).exists()


def _drain_leased(*, lease: Lease, stop_at: float) -> int:
    account = Account.objects.filter(pk=lease.account_id).filter(tradable()).first()
    if account is None:
        return 0
    exchange = get_exchange(account)
    lease.size_for(exchange)
    taken = 0
    # First whatever a previous holder left in flight: it must be settled before the
    # next order of this account may be sent.
    in_flight = Order.objects.filter(account_id=account.pk, status__in=OrderStatus.in_flight()).select_related(
        "account"
    )
    for order in in_flight.order_by("id"):
        if not lease.keep() or not _carry(order=order, exchange=exchange, lease=lease, stop_at=stop_at):
            return taken
    # The order that woke this drainer goes first; cancel requests and expiries are
    # looked at once it is sent (and every HOUSEKEEPING_SECONDS), and before leaving.
    housekept = time.monotonic()
    while time.monotonic() < stop_at:
        order = _next_order(account_id=account.pk)
        if order is None or time.monotonic() - housekept >= HOUSEKEEPING_SECONDS:
            if not _cancel_requested(account_id=account.pk, exchange=exchange, lease=lease):
                break
            from orders.services.recovery import expire_overdue

            expire_overdue(account_id=account.pk)
            housekept = time.monotonic()
        if order is None:
            break  # nothing queued, or the account was paused or disabled meanwhile
        if not lease.keep():
            break
        if not _claim(order):
            housekept = -math.inf  # cancelled or expired meanwhile: expire before looking again
            continue
        taken += 1
        if not _carry(order=order, exchange=exchange, lease=lease, stop_at=stop_at):
            break  # the account was paused, the lease lost, or the time is up
    return taken


def _next_order(*, account_id: str) -> Order | None:
    """The account's next queued order (priority first, then first in), in one query
    that also says no when the account may no longer trade."""
    tradable_account = Account.objects.filter(pk=OuterRef("account_id")).filter(tradable())
    return (
        Order.objects.filter(account_id=account_id, status=OrderStatus.QUEUED)
        .filter(Exists(tradable_account))
        .select_related("account")
        .order_by("-priority", "id")
        .first()
    )


def _claim(order: Order) -> bool:
    not_expired = Q(expires_at__isnull=True) | Q(expires_at__gte=Now())
    claimed = transitions.move(
        order,
        OrderStatus.PROCESSING,
        actor=transitions.WORKER,
        only_from=(OrderStatus.QUEUED,),
        extra=not_expired,
        started_at=timezone.now(),
    )
    return claimed


def _cancel_requested(*, account_id: str, exchange: Exchange, lease: Lease) -> bool:
    """Cancel on the exchange the resting orders users asked to cancel. Runs under the
    lease: a cancel is an order request like any other. False when the lease is lost."""
    requested = Order.objects.filter(
        account_id=account_id, status=OrderStatus.SUCCESS, cancel_requested_at__isnull=False
    ).select_related("account")
    for order in requested:
        if not lease.keep():
            return False
        try:
            execution = exchange.cancel_order(reconcile.ticket_for(order), order.order_id)
        except ExchangeError as exc:
            logger.warning("cancel of %s on the exchange failed: %s %s", order.request_id, exc.code, exc.message)
            Order.objects.filter(pk=order.pk).update(
                cancel_requested_at=None, error_code=exc.code, error_message=f"Cancel failed: {exc.message}"
            )
            continue
        from orders.services.tracking import record_exchange_state

        record_exchange_state(order, execution, actor=transitions.WORKER, cancel_requested_at=None)
    return True


class _Stop(Exception):
    """Leave the order as it is and stop draining (lease lost, time up, account paused)."""


def _carry(*, order: Order, exchange: Exchange, lease: Lease, stop_at: float) -> bool:
    """Drive one claimed or in-flight order to an outcome. Returns False when draining
    must stop: the order is then left as it is (in flight: the next drainer takes it
    over and never sends before its deadline has passed)."""
    try:
        _carry_order(order=order, exchange=exchange, lease=lease, stop_at=stop_at)
    except _Stop:
        return False
    return True


def _carry_order(*, order: Order, exchange: Exchange, lease: Lease, stop_at: float) -> None:
    unclear = 0  # sends whose outcome was unclear
    lookup_failures = 0
    attempt = 0  # back-off step
    while True:
        if order.sent:
            # A request of it may have reached the exchange: find out before anything.
            found = _look_up(order, exchange)
            if found is None:
                lookup_failures += 1
                if lookup_failures >= LOOKUP_FAILURES:
                    _give_up(order, f"the look-ups kept failing ({order.error_message})")
                _pause(lease, stop_at, backoff(lookup_failures - 1))
                continue
            if found.execution is not None:
                reconcile.record_placed(order, found.execution)
                return
            if not found.final:
                _pause(lease, stop_at, min(1.0, max(0.05, reconcile.seconds_to_deadline(order, exchange))))
                continue
            # Absent after its deadline: never placed, by any earlier request.
            Order.objects.filter(pk=order.pk).update(sent=False)
            order.sent = False
        if order.expires_at and timezone.now() > order.expires_at:
            _expire(order)
            return
        if unclear >= UNCLEAR_SENDS:
            _give_up(order, f"{unclear} sends came back unclear and the order was absent after each")
        if order.status == OrderStatus.UNKNOWN:
            moved = transitions.move(
                order,
                OrderStatus.PROCESSING,
                actor=transitions.WORKER,
                only_from=(OrderStatus.UNKNOWN,),
                reason="Absent on the exchange after its deadline: sent again with the same client order id.",
            )
            if not moved:
                return  # an operator settled it meanwhile
        outcome = _send(order, exchange, lease)
        if outcome == "placed" or outcome == "final":
            return
        if outcome == "paused":
            raise _Stop()
        if outcome == "unclear":
            unclear += 1
            continue
        # Refused before processing: nothing placed. Held, then sent again.
        attempt += 1
        _pause(lease, stop_at, backoff(attempt - 1), account_id=order.account_id)


def _send(order: Order, exchange: Exchange, lease: Lease) -> str:
    """One placement request. Returns "placed", "final" (failed for good), "paused"
    (the account had to be paused), "unclear" (now `unknown`) or "refused" (nothing
    was placed; may be sent again)."""
    ticket = reconcile.ticket_for(order)
    budget = settings.ORDER_SCHEDULER["PLACE_DEADLINE_SECONDS"]
    margin = settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"]
    try:
        refresh_markets(account=order.account, exchange=exchange)
        deadline_ms = exchange.exchange_time_ms() + int(budget * 1000)
    except RetryableError as exc:
        _refused(order, exc)
        return "refused"
    except FinalError as exc:
        return _final(order, exc)
    was_sent = order.sent
    # The deadline is committed before the request leaves, in the same statement that
    # checks the lease outlives it: a stalled holder whose lease ran out sends nothing.
    lease_holds = Account.objects.filter(pk=order.account_id).filter(held_for(budget + margin, owner=lease.owner))
    deadline_at = reconcile.deadline_from_ms(deadline_ms)
    committed = (
        Order.objects.filter(pk=order.pk, status=OrderStatus.PROCESSING)
        .filter(Exists(lease_holds))
        .update(deadline_at=deadline_at, sent=True, attempts=F("attempts") + 1)
    )
    if not committed:
        if not lease.renew():
            raise _Stop()
        return "refused"  # the lease was short of the deadline: renewed, try again
    order.deadline_at, order.sent, order.attempts = deadline_at, True, order.attempts + 1
    lease.busy_until = time.monotonic() + budget + margin
    try:
        execution = exchange.place_order(ticket, deadline_ms=deadline_ms)
    except RetryableError as exc:
        lease.busy_until = -math.inf
        if not was_sent:
            Order.objects.filter(pk=order.pk).update(sent=False)
            order.sent = False
        _refused(order, exc)
        return "refused"
    except FinalError as exc:
        lease.busy_until = -math.inf
        return _final(order, exc)
    except AmbiguousError as exc:
        _unclear(order, exc)
        return "unclear"
    except Exception as exc:  # an adapter bug or an unmapped library error: it may have been placed
        logger.exception("order %s: unexpected error from the exchange adapter", order.request_id)
        _unclear(order, AmbiguousError(f"Unexpected error: {type(exc).__name__}", code="unexpected"))
        return "unclear"
    lease.busy_until = -math.inf
    reconcile.record_placed(order, execution)
    return "placed"


def _look_up(order: Order, exchange: Exchange):
    """reconcile.look_up, or None when the look-up itself failed (noted on the order)."""
    try:
        return reconcile.look_up(order, exchange)
    except ExchangeError as exc:
        if exc.code in OUTAGE_CODES or isinstance(exc, (RetryableError, AmbiguousError)):
            transitions.degrade_account(account_id=order.account_id, reason=f"Look-ups fail: {exc.message}")
        note = f"look-up failed: {exc.code} {exc.message}".strip()
    except Exception as exc:
        logger.exception("order %s: unexpected error looking it up", order.request_id)
        note = f"look-up failed: {type(exc).__name__}"
    Order.objects.filter(pk=order.pk).update(error_message=note)
    order.error_message = note
    return None


def _refused(order: Order, exc: ExchangeError) -> None:
    """Nothing was placed. An outage degrades the account; the order is held."""
    logger.info("order %s: refused before processing (%s), held", order.request_id, exc.code)
    note = f"{exc.message} (held: sent again when the exchange takes it, until it expires)"
    Order.objects.filter(pk=order.pk).update(error_code=exc.code, error_message=note)
    if exc.code in OUTAGE_CODES:
        transitions.degrade_account(account_id=order.account_id, reason=exc.message)


def _final(order: Order, exc: FinalError) -> str:
    if isinstance(exc, AccountError):
        # Paused first: whoever sees the order failed also sees the account paused.
        transitions.pause_account(account_id=order.account_id, reason=exc.message, actor=transitions.WORKER)
        reconcile.record_failed(order, code=exc.code, message=exc.message)
        return "paused"
    reconcile.record_failed(order, code=exc.code, message=exc.message)
    return "final"


def _unclear(order: Order, exc: ExchangeError) -> None:
    transitions.move(
        order,
        OrderStatus.UNKNOWN,
        actor=transitions.WORKER,
        only_from=(OrderStatus.PROCESSING,),
        reason=exc.message,
        details={"error_code": exc.code},
        error_code=exc.code,
        error_message=exc.message,
    )


def _expire(order: Order) -> None:
    reason = "Not placed before its expiry time (the exchange never took it); not sent again."
    transitions.move(
        order,
        OrderStatus.EXPIRED,
        actor=transitions.WORKER,
        only_from=OrderStatus.in_flight(),
        reason=reason,
        error_code="expired",
        error_message=reason,
    )


def _give_up(order: Order, why: str) -> None:
    """Leave the order to an operator: `unknown`, account paused, Telegram told."""
    reason = f"Order {order.request_id} could not be reconciled ({why}); account paused for an operator."
    transitions.order_stuck(order, reason=reason, actor=transitions.WORKER)
    transitions.pause_account(account_id=order.account_id, reason=reason, actor=transitions.WORKER)
    raise _Stop()


def _pause(lease: Lease, stop_at: float, seconds: float, *, account_id: str | None = None) -> None:
    """Wait before the next step, then make sure it may still be taken: the lease is
    ours, the time is not up and (for a re-send) the account may still trade."""
    remaining = stop_at - time.monotonic()
    if seconds >= remaining:
        time.sleep(max(0.0, remaining))  # the time is up: hand over, without a busy loop
        raise _Stop()
    time.sleep(seconds)
    if not lease.keep():
        raise _Stop()
    if account_id is not None:
        from orders.services.recovery import expire_overdue

        expire_overdue(account_id=account_id)  # the orders held behind this one
        if not account_can_trade(account_id):
            raise _Stop()
