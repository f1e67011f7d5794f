"""Scheduling and execution: the per-account lease, the drain loop, reconciliation.

At most one order per account is at the exchange at any time, across processes and
hosts: a worker must hold the account's lease (taken by a conditional UPDATE compared
against the database clock) to send anything, sends one order at a time, and makes sure
before each exchange call that the lease outlives it (see Lease). django-q2 tasks only
wake a drainer; the Order table is the queue, so a lost, repeated or late task can
neither lose nor duplicate an order.
"""

import logging
import math
import os
import socket
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Now
from django.utils import timezone

from orders.exchanges import get_exchange
from orders.exchanges.base import (
    AccountError,
    AmbiguousError,
    Exchange,
    ExchangeError,
    Execution,
    FinalError,
    OrderTicket,
    RetryableError,
)
from orders.models import Account, Control, Order, OrderStatus
from orders.services import notifications
from orders.services.journal import journal_append
from orders.services.markets import refresh_markets

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 6  # placements refused as retryable before the order fails
BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
RECONCILE_LOOKUPS = 8
RESENDS = 2  # re-sends, with the same client order id, of an order found absent
# Requests one exchange step may make after a lease check: loading markets (3), setting
# leverage (1), placing the order (1).
STEP_REQUESTS = 5
# While draining, cancel requests and expired orders are looked at this often (and
# whenever a claim fails); not before every order, which would double its queries.
HOUSEKEEPING_SECONDS = 1.0


def _config(name: str):
    return settings.ORDER_SCHEDULER[name]


def _lease_until():
    return ExpressionWrapper(Now() + Value(timedelta(seconds=_config("LEASE_SECONDS"))), output_field=DateTimeField())


def new_lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(*, account_id: str, owner: str) -> bool:
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=Now())
    return Account.objects.filter(pk=account_id).filter(free).update(lease_owner=owner, lease_until=_lease_until()) == 1


def renew_lease(*, account_id: str, owner: str) -> bool:
    return Account.objects.filter(pk=account_id, lease_owner=owner).update(lease_until=_lease_until()) == 1


def release_lease(*, account_id: str, owner: str) -> None:
    Account.objects.filter(pk=account_id, lease_owner=owner).update(lease_owner="", lease_until=None)


class Lease:
    """A drainer's hold on an account. keep() before each exchange step renews it only
    when less than `margin` seconds of it may remain, counted from the start of the last
    renewal: a lower bound of what is left whatever the hosts' clocks say, since the
    database stamps the expiry after that moment. The margin covers the longest step the
    exchange adapter can take (STEP_REQUESTS at its timeout) and at least half the
    lease, so the lease still outlives every exchange call while a busy account costs
    one UPDATE per half lease instead of one per order."""

    def __init__(self, *, account_id: str, owner: str):
        self.account_id = account_id
        self.owner = owner
        self.renewed_at = -math.inf
        self.margin = float(_config("LEASE_SECONDS"))  # renew before every step until sized

    def acquire(self) -> bool:
        started = time.monotonic()
        if not acquire_lease(account_id=self.account_id, owner=self.owner):
            return False
        self.renewed_at = started
        return True

    def size_for(self, exchange: Exchange) -> None:
        lease = _config("LEASE_SECONDS")
        step = STEP_REQUESTS * (getattr(exchange, "timeout_seconds", math.inf) + 1.0)
        self.margin = min(lease, max(lease / 2, step))

    def keep(self) -> bool:
        """True when the lease is still ours for at least `margin` seconds."""
        started = time.monotonic()
        if _config("LEASE_SECONDS") - (started - self.renewed_at) > self.margin:
            return True
        if not renew_lease(account_id=self.account_id, owner=self.owner):
            return False
        self.renewed_at = started
        return True

    def release(self) -> None:
        release_lease(account_id=self.account_id, owner=self.owner)


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


def drain_account(*, account_id: str, budget_seconds: float | None = None) -> int:
    """Execute the account's queued orders, one at a time, while holding its lease.

    Returns how many orders were taken. Safe to call any number of times from anywhere:
    a caller that cannot get the lease returns at once, and the holder re-checks the
    queue after releasing it, so no wake-up is lost in between.
    """
    if budget_seconds is None:
        budget_seconds = settings.Q_TIMEOUT / 3
    deadline = time.monotonic() + budget_seconds
    owner = new_lease_owner()
    taken = 0
    while True:
        lease = Lease(account_id=account_id, owner=owner)
        if not lease.acquire():
            return taken
        try:
            taken += _drain_leased(lease=lease, deadline=deadline)
        finally:
            lease.release()
        if account_id in _tracking_owed:
            request_tracking(account_id=account_id, within=TRACK_SOON, force=True)  # the last fills
        if not has_runnable_orders(account_id=account_id):
            return taken
        if time.monotonic() >= deadline:
            # Hand over to a fresh task rather than outliving django-q2's timeout.
            wake_account(account_id)
            return taken


def has_runnable_orders(*, account_id: str) -> bool:
    """Work for a drainer: queued or in-flight orders, or a cancel asked for meanwhile."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not can_trade(account):
        return False
    work = Q(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()]) | Q(
        status=OrderStatus.SUCCESS, cancel_requested_at__isnull=False
    )
    return Order.objects.filter(account_id=account_id).filter(work).exists()


def can_trade(account: Account) -> bool:
    return account.enabled and not account.paused and not account.config_error and not _desk_paused()


def _desk_paused() -> bool:
    return Control.objects.filter(pk=1, trading_paused=True).exists()


def _drain_leased(*, lease: Lease, deadline: float) -> int:
    account_id = lease.account_id
    account = Account.objects.get(pk=account_id)
    if not can_trade(account):
        return 0
    exchange = get_exchange(account)
    lease.size_for(exchange)
    taken = 0
    # First whatever a previous holder left in flight: it must be resolved before the
    # next order of this account may be sent.
    for order in Order.objects.filter(account_id=account_id, status__in=OrderStatus.in_flight()).order_by("id"):
        if not lease.keep():
            return taken
        if not _resolve(order=order, exchange=exchange, lease=lease):
            return taken
    # The order that woke this drainer goes first; cancel requests and expiries are
    # looked at once it is sent (and every HOUSEKEEPING_SECONDS), and before leaving.
    housekept = time.monotonic()
    while time.monotonic() < deadline:
        order = _next_order(account_id=account_id)
        if order is None or time.monotonic() - housekept >= HOUSEKEEPING_SECONDS:
            if not _cancel_requested(account_id=account_id, exchange=exchange, lease=lease):
                break
            expire_overdue(account_id=account_id)
            housekept = time.monotonic()
        if order is None:
            break  # nothing queued, or the account was paused or disabled meanwhile
        if not lease.keep():
            break
        if not _claim(order):
            housekept = -math.inf  # cancelled or expired meanwhile: expire before looking again
            continue
        taken += 1
        if not _execute(order=order, exchange=exchange, lease=lease):
            break  # account paused while resolving
    return taken


def _next_order(*, account_id: str) -> Order | None:
    """The account's next queued order (priority first, then first in), in one query
    that also says no when the account may no longer trade (it, or all trading, was
    paused meanwhile)."""
    return (
        Order.objects.filter(
            account_id=account_id,
            status=OrderStatus.QUEUED,
            account__enabled=True,
            account__paused=False,
            account__config_error="",
        )
        .filter(~Exists(Control.objects.filter(trading_paused=True)))
        .select_related("account")
        .order_by("-priority", "id")
        .first()
    )


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
            execution = exchange.cancel_order(ticket_for(order), order.order_id)
        except ExchangeError as exc:
            logger.warning("cancel of %s on the exchange failed: %s %s", order.request_id, exc.code, exc.message)
            Order.objects.filter(pk=order.pk).update(
                cancel_requested_at=None, error_code=exc.code, error_message=f"Cancel failed: {exc.message}"
            )
            continue
        _record_exchange_state(order, execution, cancel_requested_at=None)
    return True


def _record_exchange_state(order: Order, execution: Execution, **fields) -> None:
    Order.objects.filter(pk=order.pk).update(
        exchange_state=execution.state,
        filled_amount=execution.filled_amount,
        average_price=execution.average_price,
        fee=execution.fee,
        fee_currency=execution.fee_currency,
        exchange_checked_at=timezone.now(),
        **fields,
    )


RESTING_STATES = ("open", "partially_filled")  # on the book: can be cancelled there
UNSETTLED_STATES = ("submitted", *RESTING_STATES)  # fill details still to come
TRACK_BATCH = 100
# Fills of freshly placed orders are asked for at most this often (seconds): each look-up
# costs a few requests and about 10 ms of CPU however many orders it settles.
TRACK_SOON = 1.0


def track_open_orders(*, account_id: str) -> int:
    """Fetch fill details of freshly placed orders, and follow orders resting on the
    book until filled or cancelled: a few requests for the account's open and latest
    filled orders, then one look-up per order found in neither. Runs beside the drainer
    (reads only), so the next order of the account never waits for them; the results
    are written in one transaction. Returns how many orders changed."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.enabled or account.config_error:
        return 0
    resting = list(
        Order.objects.filter(account_id=account_id, status=OrderStatus.SUCCESS, exchange_state__in=UNSETTLED_STATES)
        .select_related("account")
        .order_by("exchange_checked_at", "id")[:TRACK_BATCH]
    )
    if not resting:
        return 0
    exchange = get_exchange(account)
    found = []
    try:
        listed = exchange.fetch_orders([ticket_for(order) for order in resting])
        for order in resting:
            execution = listed.get(order.client_order_id) or exchange.fetch_order(ticket_for(order))
            if execution is not None:
                found.append((order, execution))
    except ExchangeError as exc:
        logger.warning("tracking open orders of %s failed: %s %s", account_id, exc.code, exc.message)
    changed = 0
    with transaction.atomic():
        for order, execution in found:
            if (execution.state, execution.filled_amount) != (order.exchange_state, order.filled_amount):
                changed += 1
            _record_exchange_state(order, execution)
    return changed


def _claim(order: Order) -> bool:
    not_expired = Q(expires_at__isnull=True) | Q(expires_at__gte=Now())
    claimed = (
        Order.objects.filter(pk=order.pk, status=OrderStatus.QUEUED)
        .filter(not_expired)
        .update(status=OrderStatus.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1)
    )
    return claimed == 1


def expire_overdue(*, account_id: str | None = None) -> int:
    """Queued orders not started before their deadline end `expired`."""
    overdue = Order.objects.filter(status=OrderStatus.QUEUED, expires_at__lt=Now())
    if account_id:
        overdue = overdue.filter(account_id=account_id)
    expired = 0
    for pk in overdue.values_list("pk", flat=True):
        expired += finish_order(
            pk=pk,
            from_statuses=[OrderStatus.QUEUED],
            status=OrderStatus.EXPIRED,
            error_code="expired",
            error_message="Not started before its expiry time; never sent to the exchange.",
        )
    return expired


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


def _execute(*, order: Order, exchange: Exchange, lease: Lease) -> bool:
    """Send a claimed order. Returns False when the account had to be paused."""
    ticket = ticket_for(order)
    for attempt in range(RETRY_ATTEMPTS):
        try:
            refresh_markets(account=order.account, exchange=exchange)
            execution = exchange.place_order(ticket)
        except RetryableError as exc:
            if attempt == RETRY_ATTEMPTS - 1:
                _fail(order, exc, note=f" (gave up after {RETRY_ATTEMPTS} attempts; never reached the exchange)")
                return True
            logger.info("order %s: retryable error %s, attempt %d", order.request_id, exc.code, attempt + 1)
            time.sleep(backoff(attempt))
            if not lease.keep():
                # Lost the lease while waiting: the order never left, give it back.
                Order.objects.filter(pk=order.pk, status=OrderStatus.PROCESSING).update(status=OrderStatus.QUEUED)
                return False
            Order.objects.filter(pk=order.pk).update(attempts=F("attempts") + 1)
        except AccountError as exc:
            # Paused first: whoever sees the order failed also sees the account paused.
            pause_account(account_id=order.account_id, reason=exc.message)
            _fail(order, exc)
            return False
        except FinalError as exc:
            _fail(order, exc)
            return True
        except AmbiguousError as exc:
            _mark_unknown(order, exc)
            return _resolve(order=order, exchange=exchange, lease=lease)
        except Exception as exc:  # an adapter bug or an unmapped library error
            logger.exception("order %s: unexpected error from the exchange adapter", order.request_id)
            _mark_unknown(order, AmbiguousError(f"Unexpected error: {type(exc).__name__}", code="unexpected"))
            return _resolve(order=order, exchange=exchange, lease=lease)
        else:
            _succeed(order, execution)
            return True
    return True


def _resolve(*, order: Order, exchange: Exchange, lease: Lease) -> bool:
    """Find out what became of an order whose send may or may not have reached the
    exchange, by looking it up by client order id. Found: success. Absent once the
    window after the last send has passed: sent again with the same client order id
    (the exchange refuses a duplicate, so this can never place it twice). Unresolvable:
    the account is paused and an operator alerted. Returns False when paused."""
    ticket = ticket_for(order)
    last_send = order.started_at or timezone.now()
    resends = 0
    failure = ""
    for lookup in range(RECONCILE_LOOKUPS):
        if lookup:
            time.sleep(backoff(lookup - 1))
        if not lease.keep():
            return False
        try:
            found = exchange.fetch_order(ticket)
        except ExchangeError as exc:
            failure = f"lookup failed: {exc.code} {exc.message}".strip()
            continue
        except Exception as exc:
            failure = f"lookup failed: {type(exc).__name__}"
            logger.exception("order %s: unexpected error looking it up", order.request_id)
            continue
        if found is not None:
            _succeed(order, found)
            return True
        window = _config("RECONCILE_WINDOW")
        if (timezone.now() - last_send).total_seconds() < window:
            time.sleep(min(window, 1.0))
            continue
        if resends >= RESENDS:
            failure = f"still absent after {RESENDS} re-sends"
            break
        resends += 1
        last_send = timezone.now()
        Order.objects.filter(pk=order.pk).update(attempts=F("attempts") + 1, started_at=last_send)
        try:
            execution = exchange.place_order(ticket)
        except FinalError as exc:
            _fail(order, exc)
            return True
        except ExchangeError as exc:
            failure = f"re-send failed: {exc.code} {exc.message}".strip()
            continue
        _succeed(order, execution)
        return True
    reason = f"Order {order.request_id} could not be reconciled ({failure}); account paused for an operator."
    _mark_unknown(order, AmbiguousError(reason, code="unresolved"))
    notifications.order_stuck(order=order, reason=reason)
    pause_account(account_id=order.account_id, reason=reason)
    return False


def _mark_unknown(order: Order, exc: ExchangeError) -> None:
    Order.objects.filter(pk=order.pk, status__in=OrderStatus.in_flight()).update(
        status=OrderStatus.UNKNOWN, error_code=exc.code, error_message=exc.message
    )


def _succeed(order: Order, execution: Execution) -> None:
    if execution.state == "cancelled" and not execution.filled_amount:
        _fail(order, FinalError("The exchange cancelled the order; nothing was filled.", code="exchange_cancelled"))
        return
    if finish_order(
        pk=order.pk,
        from_statuses=OrderStatus.in_flight(),
        status=OrderStatus.SUCCESS,
        order_id=execution.order_id,
        exchange_state=execution.state,
        filled_amount=execution.filled_amount,
        average_price=execution.average_price,
        fee=execution.fee,
        fee_currency=execution.fee_currency,
        error_code="",
        error_message="",
    ):
        Account.objects.filter(pk=order.account_id).update(last_success_at=timezone.now())
        if execution.state == "submitted":
            request_tracking(account_id=order.account_id, within=TRACK_SOON)


def _fail(order: Order, exc: ExchangeError, note: str = "") -> None:
    message = f"{exc.message}{note}"
    if finish_order(
        pk=order.pk,
        from_statuses=OrderStatus.in_flight(),
        status=OrderStatus.FAILED,
        error_code=exc.code,
        error_message=message,
    ):
        Account.objects.filter(pk=order.account_id).update(
            last_error_at=timezone.now(), last_error=f"{exc.code} {message}".strip()
        )


def finish_order(*, pk: int, from_statuses: list[str], status: str, **fields) -> int:
    """The one place an order reaches a final status: a conditional UPDATE from the
    expected statuses, then the journal line and the notification."""
    done = Order.objects.filter(pk=pk, status__in=from_statuses).update(
        status=status, finished_at=timezone.now(), **fields
    )
    if done:
        order = Order.objects.select_related("account", "retry_of").get(pk=pk)
        journal_append(order=order)
        notifications.order_finished(order=order)
    return done


def pause_account(*, account_id: str, reason: str) -> None:
    if Account.objects.filter(pk=account_id, paused=False).update(paused=True, pause_reason=reason):
        logger.warning("account %s paused: %s", account_id, reason)
        notifications.account_paused(account_id=account_id, reason=reason)


def recover() -> list[str]:
    """Periodic safety net: expire overdue orders and wake every tradable account that
    has queued or in-flight orders but no live lease (a lost task, a crashed worker, a
    Redis broker that dropped a task). Returns the accounts woken."""
    expire_overdue()
    if _desk_paused():
        return []
    pending = (
        Order.objects.filter(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()])
        .values_list("account_id", flat=True)
        .distinct()
    )
    idle = Account.objects.filter(pk__in=list(pending), enabled=True, paused=False, config_error="").filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=Now())
    )
    woken = list(idle.values_list("pk", flat=True))
    for account_id in woken:
        wake_account(account_id)
    _schedule_tracking()
    return woken


def _schedule_tracking() -> None:
    """Queue a look-up of unsettled orders per account, at most once per TRACK_INTERVAL."""
    accounts = (
        Order.objects.filter(status=OrderStatus.SUCCESS, exchange_state__in=UNSETTLED_STATES)
        .values_list("account_id", flat=True)
        .distinct()
    )
    for account_id in list(accounts):
        request_tracking(account_id=account_id, within=_config("TRACK_INTERVAL"))


_tracking_asked: dict[str, float] = {}
# Accounts whose latest request was folded into an earlier one, which may have run
# before the order that asked existed: the drainer asks once more when it is done.
_tracking_owed: set[str] = set()


def request_tracking(*, account_id: str, within: float, force: bool = False) -> None:
    """Queue a look-up of the account's unsettled orders unless one was queued less
    than `within` seconds ago (the shared cache remembers, across processes and hosts),
    or in any case when forced."""
    from django.core.cache import cache
    from django_q.tasks import async_task

    key = f"order-scheduler:track:{account_id}:{within:g}"
    now = time.monotonic()
    # This process asked already: spare the shared cache a round trip per order.
    asked = not force and now - _tracking_asked.get(key, -math.inf) < within
    if asked or not (force or cache.add(key, 1, timeout=within)):
        _tracking_owed.add(account_id)
        return
    _tracking_asked[key] = now
    _tracking_owed.discard(account_id)
    async_task("orders.tasks.track_open_orders", account_id, task_name=f"track:{account_id}", group="track")
