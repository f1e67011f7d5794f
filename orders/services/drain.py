"""The drain loop: an account's orders, one request at a time, under its lease.

django-q2 tasks only wake a drainer; the Order table is the queue, so a lost, repeated or
late task can neither lose nor duplicate an order. A drainer first settles what a
previous holder left in flight (never re-sent before its last deadline has passed), then
takes queued orders by priority, then first in: one at a time, or up to BATCH_SIZE in
one OKX batch request when more are waiting (still one request in flight per account).

Every placement request carries a deadline (OKX's expTime) committed on its orders,
together with a check that the lease outlives it, in the transaction that claims them,
right before the request leaves. Outcomes, per order:
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
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Q
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
    NotPlacedError,
    RetryableError,
)
from orders.models import Account, Order, OrderStatus, tradable
from orders.services import reconcile, transitions
from orders.services.lease import Lease, held_for, new_lease_owner
from orders.services.markets import refresh_markets
from orders.services.pacing import Budget, budget_for

logger = logging.getLogger(__name__)

BACKOFF_BASE = 0.25
BACKOFF_CAP = 8.0
# Look-ups that failed, before the orders are left to an operator (account paused).
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


def wake_idle_accounts(account_ids) -> None:
    """Wake the drainers of accounts that just got orders, in the transaction that queued
    them. An account whose lease is held needs no task: its holder looks at the queue
    again after it releases the lease, and that release waits for this transaction (the
    write lock on SQLite, the account row locked here on PostgreSQL), so it sees these
    orders. Under load that spares a task per order for a drainer already at work."""
    account_ids = sorted(set(account_ids))
    held = set(
        Account.objects.select_for_update()
        .filter(pk__in=account_ids, lease_until__gt=Now())
        .values_list("pk", flat=True)
    )
    for account_id in account_ids:
        if account_id not in held:
            wake_account(account_id)


def account_can_trade(account_id: str) -> bool:
    return Account.objects.filter(pk=account_id).filter(tradable()).exists()


def batch_size(account: Account) -> int:
    """Orders per placement request for the account: 1 without batching (the account's
    options.batch is false)."""
    if (account.options or {}).get("batch") is False:
        return 1
    return settings.ORDER_SCHEDULER["BATCH_SIZE"]


def drain_account(*, account_id: str, budget_seconds: float | None = None) -> int:
    """Execute the account's queued orders while holding its lease.

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
            transitions.flush_journal_marks()
        settle_owed_tracking(account_id=account_id)
        if not has_runnable_orders(account_id=account_id):
            return taken
        if time.monotonic() >= stop_at:
            # Hand over to a fresh task rather than outliving django-q2's timeout.
            wake_account(account_id)
            return taken


def has_runnable_orders(*, account_id: str) -> bool:
    """Work for a drainer: queued or in-flight orders, or a cancel asked for meanwhile."""
    work = Q(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()]) | Q(
        status=OrderStatus.SUCCESS, cancel_requested_at__isnull=False
    )
    return Order.objects.filter(account_id=account_id).filter(work, tradable("account__")).exists()


@dataclass
class _Drain:
    """One drainer's hold on an account while its lease lasts."""

    account: Account
    exchange: Exchange
    lease: Lease
    stop_at: float
    budget: Budget
    size: int = 1
    portfolio_margin: bool = False
    taken: int = 0
    unclear: dict = field(default_factory=dict)  # order pk -> sends that came back unclear


def _drain_leased(*, lease: Lease, stop_at: float) -> int:
    account = Account.objects.filter(pk=lease.account_id).filter(tradable()).first()
    if account is None:
        return 0
    exchange = get_exchange(account)
    lease.size_for(exchange)
    drain = _Drain(
        account,
        exchange,
        lease,
        stop_at,
        budget=budget_for(account),
        size=batch_size(account),
        portfolio_margin=bool((account.options or {}).get("portfolio_margin")),
    )
    try:
        # First whatever a previous holder left in flight: it must be settled before
        # the next order of this account may be sent.
        in_flight = _with_account(
            Order.objects.filter(account_id=account.pk, status__in=OrderStatus.in_flight()).order_by("id"), account
        )
        for start in range(0, len(in_flight), drain.size):
            if not lease.keep():
                return drain.taken
            _carry(drain, in_flight[start : start + drain.size])
        _drain_queue(drain)
    except _Stop:
        pass
    return drain.taken


def _drain_queue(drain: _Drain) -> None:
    # The orders that woke this drainer go first; cancel requests and expiries are
    # looked at once they are sent (and every HOUSEKEEPING_SECONDS), and before leaving.
    from orders.services.recovery import expire_overdue

    housekept = time.monotonic()
    while time.monotonic() < drain.stop_at:
        orders = _next_orders(drain.account, limit=drain.size)
        if not orders or time.monotonic() - housekept >= HOUSEKEEPING_SECONDS:
            _cancel_requested(drain)
            expire_overdue(account_id=drain.account.pk)
            housekept = time.monotonic()
        if not orders:
            return  # nothing queued, or the account was paused or disabled meanwhile
        if not drain.lease.keep():
            raise _Stop()
        claimed = _send(drain, orders, claim=True)
        if not claimed:
            housekept = -math.inf  # cancelled or expired meanwhile: expire before looking again
            continue
        drain.taken += len(claimed)
        unsettled = [order for order in claimed if order.status in OrderStatus.in_flight()]
        if any(not order.sent for order in unsettled):
            _pause(drain, backoff(0))  # refused before processing: back off before the next try
        if unsettled:
            _carry(drain, unsettled)


def _next_orders(account: Account, *, limit: int) -> list[Order]:
    """The account's next queued orders (priority first, then first in), in one query
    that also says none when the account may no longer trade. A batch stops before an
    order whose leverage differs from an earlier one's on the same instrument and margin
    mode: a batch shares the account's leverage step."""
    queued = (
        Order.objects.filter(
            account_id=account.pk,
            status=OrderStatus.QUEUED,
        )
        .filter(tradable("account__"))  # as a join: one query says none when it may not trade
        .order_by("-priority", "id")[:limit]
    )
    batch, leverage = [], {}
    for order in _with_account(queued, account):
        if leverage.setdefault((order.symbol, order.margin_mode), order.leverage) != order.leverage:
            break
        batch.append(order)
    return batch


def _with_account(orders, account: Account) -> list[Order]:
    """The orders, each with the drainer's account object (one object per drain, read
    once: a join would build it again for every order, in every query)."""
    orders = list(orders)
    for order in orders:
        order.account = account
    return orders


def _cancel_requested(drain: _Drain) -> None:
    """Cancel on the exchange the resting orders users asked to cancel. Runs under the
    lease: a cancel is an order request like any other."""
    from orders.services.tracking import record_exchange_state

    requested = Order.objects.filter(
        account_id=drain.account.pk, status=OrderStatus.SUCCESS, cancel_requested_at__isnull=False
    )
    for order in _with_account(requested, drain.account):
        if not drain.lease.keep():
            raise _Stop()
        try:
            execution = drain.exchange.cancel_order(reconcile.ticket_for(order), order.order_id)
        except ExchangeError as exc:
            logger.warning("cancel of %s on the exchange failed: %s %s", order.request_id, exc.code, exc.message)
            Order.objects.filter(pk=order.pk).update(
                cancel_requested_at=None, error_code=exc.code, error_message=f"Cancel failed: {exc.message}"
            )
            continue
        record_exchange_state(order, execution, actor=transitions.WORKER, cancel_requested_at=None)


class _Stop(Exception):
    """Leave the orders as they are and stop draining (lease lost, time up, paused)."""


def _carry(drain: _Drain, orders: list[Order]) -> None:
    """Drive in-flight orders (claimed and sent, or left by a previous holder) to an
    outcome. Raises _Stop when draining must stop: they are then left as they are (the
    next drainer takes them over and never sends before their deadline has passed)."""
    pending = list(orders)
    lookup_failures = 0
    attempt = 0  # back-off step of refusals
    while pending:
        sent = [order for order in pending if order.sent]
        if sent:
            # A request of them may have reached the exchange: find out before anything.
            found = _look_up(drain, sent)
            if not isinstance(found, dict):
                # An unreachable exchange only holds the orders (the account is
                # degraded); other failures leave them to an operator after a while.
                lookup_failures += found != "outage"
                if lookup_failures >= LOOKUP_FAILURES:
                    _give_up(drain, sent, f"the look-ups kept failing ({sent[0].error_message})")
                _pause(drain, backoff(min(lookup_failures, 5)))
                continue
            placed = [(order, found[order.pk].execution) for order in sent if found[order.pk].execution]
            _record_placed(drain, placed)
            waiting = [order for order in sent if found[order.pk].execution is None and not found[order.pk].final]
            pending = [order for order in pending if order.pk not in {o.pk for o, _ in placed}]
            if waiting:
                wait = max(reconcile.seconds_to_deadline(order, drain.exchange) for order in waiting)
                _pause(drain, min(1.0, max(0.05, wait)))
                continue
            # Absent after their deadline: never placed, by any earlier request.
            absent = [order for order in sent if order in pending]
            Order.objects.filter(pk__in=[order.pk for order in absent]).update(sent=False)
            for order in absent:
                order.sent = False
        for order in [o for o in pending if o.expires_at and timezone.now() > o.expires_at]:
            _expire(order)
            pending.remove(order)
        too_unclear = [order for order in pending if drain.unclear.get(order.pk, 0) >= UNCLEAR_SENDS]
        if too_unclear:
            _give_up(drain, too_unclear, f"{UNCLEAR_SENDS} sends came back unclear and the order was absent after each")
        if not pending:
            return
        if not account_can_trade(drain.account.pk):
            raise _Stop()  # paused meanwhile: a re-send waits for the resume
        for order in [o for o in pending if o.status == OrderStatus.UNKNOWN]:
            moved = transitions.move(
                order,
                OrderStatus.PROCESSING,
                actor=transitions.WORKER,
                only_from=(OrderStatus.UNKNOWN,),
                reason="Absent on the exchange after its deadline: sent again with the same client order id.",
            )
            if not moved:
                pending.remove(order)  # an operator settled it meanwhile
        for start in range(0, len(pending), drain.size):
            _send(drain, pending[start : start + drain.size], claim=False)
        refused = [order for order in pending if order.status == OrderStatus.PROCESSING and not order.sent]
        pending = [order for order in pending if order.status in OrderStatus.in_flight()]
        if refused:
            # Refused before processing: nothing placed. Held, then sent again.
            attempt += 1
            _pause(drain, backoff(attempt - 1))


def _send(drain: _Drain, orders: list[Order], *, claim: bool) -> list[Order]:
    """One placement request for `orders` (claimed from the queue first when `claim`).
    Returns the orders it was for; each has then moved on (success, failed, unknown) or
    stays processing with `sent` false (refused: nothing placed, may be sent again).
    Raises _Stop when the account had to be paused or the lease is lost."""
    exchange = drain.exchange
    try:
        refresh_markets(account=drain.account, exchange=exchange)
        _wait_for_budget(drain, orders)
        deadline_ms = exchange.exchange_time_ms() + int(settings.ORDER_SCHEDULER["PLACE_DEADLINE_SECONDS"] * 1000)
    except (RetryableError, FinalError) as exc:  # before anything was sent
        if claim:
            orders = transitions.claim(orders, actor=transitions.WORKER, extra=_not_expired())
        if isinstance(exc, RetryableError):
            _refused(drain, orders, exc)  # held: sent again after a back-off
        else:
            _final(drain, [(order, exc) for order in orders])
        return orders
    was_sent = {order.pk: order.sent for order in orders}
    orders = _commit_deadline(drain, orders, deadline_at=reconcile.deadline_from_ms(deadline_ms), claim=claim)
    if not orders:
        return []
    results = _request(drain, orders, deadline_ms)
    _record_results(drain, orders, results, was_sent)
    return orders


def _send_window() -> float:
    """How long after a request leaves it may still be processed: its deadline plus the
    clock margin (the lease must outlive it, and is not released before it ends)."""
    return settings.ORDER_SCHEDULER["PLACE_DEADLINE_SECONDS"] + settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"]


def _commit_deadline(drain: _Drain, orders: list[Order], *, deadline_at, claim: bool) -> list[Order]:
    """Commit the request's deadline on its orders, in the transaction that claims them
    (when `claim`) and checks that the lease outlives the deadline plus the clock
    margin, right before the request leaves: a stalled holder whose lease ran out sends
    nothing. Returns the orders that may be sent now ([] to look again: the lease was
    short of the deadline and is renewed, or they were cancelled or expired meanwhile);
    raises _Stop when the lease is lost."""
    outlives = _send_window()
    lease_holds = Account.objects.filter(pk=drain.account.pk).filter(held_for(outlives, owner=drain.lease.owner))
    if claim:
        # Queued orders are claimed and their deadline committed by one UPDATE; a fresh
        # order has had no send, so this is its first attempt.
        orders = transitions.claim(
            orders,
            actor=transitions.WORKER,
            extra=_not_expired() & Q(Exists(lease_holds)),
            deadline_at=deadline_at,
            sent=True,
            attempts=1,
        )
        short = not orders and not drain.lease.holds_for(outlives)
    else:
        with transaction.atomic():
            committed = (
                Order.objects.filter(pk__in=[order.pk for order in orders], status=OrderStatus.PROCESSING)
                .filter(Exists(lease_holds))
                .update(deadline_at=deadline_at, sent=True, attempts=F("attempts") + 1)
            )
            short = committed != len(orders)
            if short:
                transaction.set_rollback(True)
        if not short:
            for order in orders:
                order.deadline_at, order.sent, order.attempts = deadline_at, True, order.attempts + 1
    if short:
        if not drain.lease.renew():
            raise _Stop()
        return []
    return orders


def _request(drain: _Drain, orders: list[Order], deadline_ms: int) -> list:
    """The placement request itself: each order's Execution or error. Until every order
    has its answer the lease is never released early (Lease.busy_until)."""
    drain.lease.busy_until = time.monotonic() + _send_window()
    tickets = [reconcile.ticket_for(order) for order in orders]
    drain.budget.spend([order.symbol for order in orders])
    try:
        if len(orders) == 1:
            results = [_one(drain.exchange, tickets[0], deadline_ms)]
        else:
            results = drain.exchange.place_orders(tickets, deadline_ms=deadline_ms)
    except (RetryableError, FinalError, AmbiguousError) as exc:  # the request as a whole
        results = [exc] * len(orders)
    except Exception as exc:  # an adapter bug or an unmapped library error: it may have been placed
        logger.exception("orders %s: unexpected error from the exchange adapter", orders[0].request_id)
        results = [AmbiguousError(f"Unexpected error: {type(exc).__name__}", code="unexpected")] * len(orders)
    if not any(isinstance(result, AmbiguousError) for result in results):
        drain.lease.busy_until = -math.inf  # every member has its answer
    return results


def _one(exchange: Exchange, ticket, deadline_ms: int):
    try:
        return exchange.place_order(ticket, deadline_ms=deadline_ms)
    except ExchangeError as exc:
        return exc


def _record_results(drain: _Drain, orders: list[Order], results: list, was_sent: dict) -> None:
    pairs = list(zip(orders, results, strict=True))
    if len(orders) > 1 and drain.portfolio_margin and all(type(result) is FinalError for result in results):
        # A portfolio-margin account takes a batch all or nothing: one refused member
        # refuses them all. Nothing was placed; each is sent again alone for its own verdict.
        drain.size = 1
        refusal = NotPlacedError(f"Batch refused as a whole: {results[0].message}", code="batch")
        pairs = [(order, refusal) for order in orders]
    _record_placed(drain, [(order, result) for order, result in pairs if isinstance(result, Execution)])
    # A refusal of the whole request is one error for all its orders: held together.
    held: dict[int, tuple[RetryableError, list[Order]]] = {}
    for order, result in pairs:
        if isinstance(result, RetryableError):
            held.setdefault(id(result), (result, []))[1].append(order)
        elif isinstance(result, AmbiguousError):
            drain.unclear[order.pk] = drain.unclear.get(order.pk, 0) + 1
            _unclear(order, result)
    for exc, group in held.values():
        fresh = [order for order in group if not was_sent[order.pk]]
        # Unless a later holder has sent them since (a new deadline): then they are theirs.
        _by_deadline(fresh).update(sent=False)
        for order in fresh:
            order.sent = False
        _refused(drain, group, exc)
    refused = [(order, result) for order, result in pairs if isinstance(result, FinalError)]
    if refused:
        _final(drain, refused)


def _by_deadline(orders: list[Order]):
    """The orders' rows that still carry the deadline each was last sent with."""
    condition = Q(pk__in=[])
    for order in orders:
        condition |= Q(pk=order.pk, deadline_at=order.deadline_at)
    return Order.objects.filter(condition)


def _record_placed(drain: _Drain, placed: list[tuple[Order, Execution]]) -> None:
    if placed:
        reconcile.record_placed_many(placed)
        if drain.account.degraded_since:
            transitions.recover_account(account_id=drain.account.pk)
            drain.account.degraded_since = None


def _not_expired() -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gte=Now())


def _wait_for_budget(drain: _Drain, orders: list[Order]) -> None:
    """Keep within OKX's placement limits (orders.services.pacing)."""
    wait = drain.budget.delay([order.symbol for order in orders])
    if wait > 0:
        if time.monotonic() + wait >= drain.stop_at:
            raise _Stop()
        time.sleep(wait)


def _look_up(drain: _Drain, orders: list[Order]) -> dict | str:
    """reconcile.look_up_many; when the look-up itself failed, "outage" (the exchange
    cannot be reached: the account is degraded) or "failed", noted on the orders."""
    outcome = "failed"
    try:
        return reconcile.look_up_many(orders, drain.exchange)
    except ExchangeError as exc:
        if exc.code in OUTAGE_CODES:
            outcome = "outage"
            _degrade(drain, f"Look-ups fail: {exc.message}")
        note = f"look-up failed: {exc.code} {exc.message}".strip()
    except Exception as exc:
        logger.exception("orders %s: unexpected error looking them up", orders[0].request_id)
        note = f"look-up failed: {type(exc).__name__}"
    Order.objects.filter(pk__in=[order.pk for order in orders]).update(error_message=note)
    for order in orders:
        order.error_message = note
    return outcome


def _refused(drain: _Drain, orders: list[Order], exc: ExchangeError) -> None:
    """Nothing was placed. An outage degrades the account; the orders are held."""
    logger.info("orders %s: refused before processing (%s), held", orders[0].request_id, exc.code)
    note = f"{exc.message} (held: sent again when the exchange takes it, until it expires)"
    _by_deadline(orders).filter(status=OrderStatus.PROCESSING).update(error_code=exc.code, error_message=note)
    if exc.code in OUTAGE_CODES:
        _degrade(drain, exc.message)


def _degrade(drain: _Drain, reason: str) -> None:
    """The exchange cannot be reached: the account is degraded, and this drainer knows it
    (the next placement recorded marks it recovered)."""
    transitions.degrade_account(account_id=drain.account.pk, reason=reason)
    drain.account.degraded_since = drain.account.degraded_since or timezone.now()


def _final(drain: _Drain, refused: list[tuple[Order, FinalError]]) -> None:
    """Refused for good: failed. Credentials or site refused: the account is paused
    first (whoever sees the order failed also sees the account paused), and draining
    stops."""
    account_errors = [exc for _, exc in refused if isinstance(exc, AccountError)]
    if account_errors:
        transitions.pause_account(
            account_id=drain.account.pk, reason=account_errors[0].message, actor=transitions.WORKER
        )
    for order, exc in refused:
        # Only while no later holder has sent the order since (it would carry a new deadline).
        reconcile.record_failed(
            order,
            code=exc.code,
            message=exc.message,
            only_from=OrderStatus.in_flight(),
            extra=Q(deadline_at=order.deadline_at),
        )
    if account_errors:
        raise _Stop()


def _unclear(order: Order, exc: ExchangeError) -> None:
    transitions.move(
        order,
        OrderStatus.UNKNOWN,
        actor=transitions.WORKER,
        only_from=(OrderStatus.PROCESSING,),
        extra=Q(deadline_at=order.deadline_at),
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


def _give_up(drain: _Drain, orders: list[Order], why: str) -> None:
    """Leave the orders to an operator: `unknown`, account paused, Telegram told."""
    for order in orders:
        reason = f"Order {order.request_id} could not be reconciled ({why}); account paused for an operator."
        transitions.order_stuck(order, reason=reason, actor=transitions.WORKER)
    transitions.pause_account(account_id=drain.account.pk, reason=reason, actor=transitions.WORKER)
    raise _Stop()


def _pause(drain: _Drain, seconds: float) -> None:
    """Wait before the next step, then make sure it may still be taken: the lease is
    ours, the time is not up and the account may still trade."""
    from orders.services.recovery import expire_overdue

    remaining = drain.stop_at - time.monotonic()
    if seconds >= remaining:
        time.sleep(max(0.0, remaining))  # the time is up: hand over, without a busy loop
        raise _Stop()
    time.sleep(seconds)
    if not drain.lease.keep():
        raise _Stop()
    expire_overdue(account_id=drain.account.pk)  # the orders held behind these
    if not account_can_trade(drain.account.pk):
        raise _Stop()
