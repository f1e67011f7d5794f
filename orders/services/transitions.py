"""The one place that changes an order's status, an account's pause or degraded state,
and the desk-wide switch.

Each change is a conditional UPDATE from the states the table below allows, and an
OrderEvent row in the same transaction (who did it, why, what the exchange said). The
notification outbox row is written in that transaction too; the journal line is written
right after the commit, and `replay_journal` writes any line a crash left owed, so a
line is neither lost nor written twice. Nothing else in the code base writes these
columns.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from orders.models import Account, Control, EventActor, Order, OrderEvent, OrderStatus
from orders.services import notifications
from orders.services.errors import Conflict
from orders.services.journal import journal_append, journal_append_many, journal_lines_present

logger = logging.getLogger(__name__)

S = OrderStatus
# to-status -> the statuses an order may come from.
ALLOWED: dict[str, tuple[str, ...]] = {
    S.PROCESSING: (S.QUEUED, S.UNKNOWN),  # claimed; or an absent order sent again
    S.UNKNOWN: (S.PROCESSING,),  # the outcome of a send is unclear: reconcile
    S.SUCCESS: (S.PROCESSING, S.UNKNOWN),
    S.FAILED: (S.PROCESSING, S.UNKNOWN, S.SUCCESS),  # SUCCESS: the exchange cancelled it unfilled
    S.CANCELLED: (S.QUEUED,),
    S.EXPIRED: (S.QUEUED, S.PROCESSING, S.UNKNOWN),  # never placed, past its expiry
}
# Exchange states after which an order's fills no longer change.
SETTLED_STATES = ("filled", "cancelled")
# An event still owing its journal line this long after it was committed was left by a
# process that died between the commit and the write.
JOURNAL_GRACE = timedelta(seconds=30)


class TransitionError(Conflict):
    """The change makes no sense in the current state; the message says why."""


class NotAllowed(TransitionError):
    """The table of allowed transitions refuses it (a programming error if it happens)."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a person (user, or an operator through the admin or a
    command) or the service itself (worker, recovery, system)."""

    kind: str
    user: object = None

    @property
    def username(self) -> str:
        return getattr(self.user, "username", "") or ""

    @property
    def real_user(self):
        return self.user if getattr(self.user, "is_authenticated", False) else None


WORKER = Actor(EventActor.WORKER)
RECOVERY = Actor(EventActor.RECOVERY)


def person(user, *, operator: bool = False) -> Actor:
    return Actor(EventActor.OPERATOR if operator else EventActor.USER, user)


# --- orders -----------------------------------------------------------------------------


def move(
    order: Order,
    to: str,
    *,
    actor: Actor,
    reason: str = "",
    only_from: tuple[str, ...] | None = None,
    extra: Q | None = None,
    details: dict | None = None,
    **fields,
) -> bool:
    """Move the order to `to` if its current status allows it (narrowed by `only_from`
    and the `extra` condition), setting `fields` in the same UPDATE. Returns False when
    the order was not in such a state (someone else changed it first); the event, the
    notification and, after the commit, the journal line follow a change."""
    allowed = ALLOWED.get(to)
    if allowed is None:
        raise NotAllowed(f"No order may move to {to}.")
    sources = tuple(s for s in allowed if only_from is None or s in only_from)
    if not sources:
        raise NotAllowed(f"An order may not move from {'/'.join(only_from or ())} to {to}.")
    now = timezone.now()
    if to in OrderStatus.final():
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        if to != OrderStatus.PROCESSING:  # not on the way to a send: that path stays short
            flush_journal_marks()  # in this transaction: no commit of their own
        rows = Order.objects.filter(pk=order.pk)
        if extra is not None:
            rows = rows.filter(extra)
        # The status it had: the one the caller last saw, else read inside the
        # transaction before the UPDATE changes it.
        before = order.status if order.status in sources else None
        if before is None or not rows.filter(status=before).update(status=to, **fields):
            before = rows.filter(status__in=sources).values_list("status", flat=True).first()
            if before is None or not rows.filter(status=before).update(status=to, **fields):
                return False
        for name, value in fields.items():
            setattr(order, name, value)
        order.status = to
        journal = to in OrderStatus.final()
        event = _event(
            kind="status",
            order=order,
            actor=actor,
            from_status=before,
            to_status=to,
            reason=reason,
            details=details,
            journal=journal,
            at=now,
        )
        _notify_status(order, before=before, reason=reason)
    if journal:
        transaction.on_commit(lambda: _journal(event, order))
    return True


def claim(orders: list[Order], *, actor: Actor, extra: Q | None = None, **fields) -> list[Order]:
    """Move queued orders to processing (a drainer takes them), setting `fields` in the
    same UPDATE: the ones that were still queued (and meet `extra`) are returned. One
    UPDATE, one read and one INSERT of their events for any number of orders."""
    if len(orders) == 1:
        moved = move(orders[0], OrderStatus.PROCESSING, actor=actor, only_from=(OrderStatus.QUEUED,), extra=extra,
                     started_at=timezone.now(), **fields)  # fmt: skip
        return orders if moved else []
    now = timezone.now()
    ids = [order.pk for order in orders]
    with transaction.atomic():
        rows = Order.objects.filter(pk__in=ids, status=OrderStatus.QUEUED)
        if extra is not None:
            rows = rows.filter(extra)
        rows.update(status=OrderStatus.PROCESSING, started_at=now, **fields)
        # Only the account's lease holder moves its orders to processing: those that
        # are processing since `now` are the ones this UPDATE took.
        taken = set(
            Order.objects.filter(pk__in=ids, status=OrderStatus.PROCESSING, started_at=now).values_list("pk", flat=True)
        )
        claimed = [order for order in orders if order.pk in taken]
        for order in claimed:
            order.status, order.started_at = OrderStatus.PROCESSING, now
            for name, value in fields.items():
                setattr(order, name, value)
        _events(claimed, actor=actor, from_status=OrderStatus.QUEUED, to_status=OrderStatus.PROCESSING, at=now)
    return claimed


def finish_many(
    orders: list[Order], to: str, *, actor: Actor, fields: dict[int, dict], reason: str = ""
) -> list[Order]:
    """Move many in-flight orders to a final status at once, each with its own `fields`
    (by order pk): one locked read, one UPDATE, one INSERT of their events, and their
    journal lines in one write after the commit. Returns the orders moved."""
    sources = ALLOWED[to]
    now = timezone.now()
    with transaction.atomic():
        flush_journal_marks()
        current = dict(
            Order.objects.select_for_update()
            .filter(pk__in=[order.pk for order in orders], status__in=sources)
            .values_list("pk", "status")
        )
        moved = [order for order in orders if order.pk in current]
        names = {"status", "finished_at"}
        for order in moved:
            for name, value in fields[order.pk].items():
                setattr(order, name, value)
                names.add(name)
            order.status, order.finished_at = to, now
        if not moved:
            return []
        _update_rows(moved, sorted(names))
        events = [
            _event_row(kind="status", order=order, actor=actor, from_status=current[order.pk], to_status=to,
                       reason=reason, journal=to in OrderStatus.final(), at=now)
            for order in moved
        ]  # fmt: skip
        OrderEvent.objects.bulk_create(events)
        for order in moved:
            _notify_status(order, before=current[order.pk], reason=reason)
    if to in OrderStatus.final():
        transaction.on_commit(lambda: _journal_many(events, moved))
    return moved


def _update_rows(orders: list[Order], names: list[str]) -> None:
    """One UPDATE writing each order's own values of `names`: fields with one value for
    all orders are set plainly, the others by a CASE on the id. (Django's bulk_update
    builds an expression per row and field, which costs milliseconds per order.)"""
    common = {n: getattr(orders[0], n) for n in names if all(getattr(o, n) == getattr(orders[0], n) for o in orders)}
    varying = [n for n in names if n not in common]
    ids = [order.pk for order in orders]
    if not varying:
        Order.objects.filter(pk__in=ids).update(**common)
        return
    meta, sets, params = Order._meta, [], []
    for name in names:
        field = meta.get_field(name)
        if name in common:
            sets.append(f"{connection.ops.quote_name(field.column)} = %s")
            params.append(field.get_db_prep_save(common[name], connection))
            continue
        # PostgreSQL types a CASE of bare parameters as text: cast to the column's type.
        value = f"CAST(%s AS {field.db_type(connection)})" if connection.vendor == "postgresql" else "%s"
        cases = " ".join(f"WHEN %s THEN {value}" for _ in orders)
        sets.append(f"{connection.ops.quote_name(field.column)} = CASE {connection.ops.quote_name('id')} {cases} END")
        for order in orders:
            params += [order.pk, field.get_db_prep_save(getattr(order, name), connection)]
    marks = ", ".join("%s" for _ in ids)
    sql = f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {', '.join(sets)} WHERE id IN ({marks})"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *ids])


def exchange_update(order: Order, *, actor: Actor, details: dict, **fields) -> bool:
    """Record what the exchange now says of a placed order (state, fills, fee). Writes an
    event only when something changed; when the state settles (filled, or cancelled with
    something filled) the journal gets the order's second line and Telegram is told. An
    order the exchange cancelled with nothing filled, unasked, fails (exchange_cancelled)."""
    return exchange_update_many([(order, fields, details)], actor=actor) > 0


def _exchange_cancelled(order: Order, *, actor: Actor, details: dict, fields: dict) -> bool:
    """Cancelled by the exchange with nothing filled, not at a user's request (that one
    stays a success): the order fails."""
    reason = "The exchange cancelled the order; nothing was filled."
    return move(
        order,
        OrderStatus.FAILED,
        actor=actor,
        only_from=(OrderStatus.SUCCESS,),
        reason=reason,
        details=details,
        error_code="exchange_cancelled",
        error_message=reason,
        **fields,
    )


def exchange_update_many(updates: list[tuple[Order, dict, dict]], *, actor: Actor) -> int:
    """exchange_update for many orders at once, as (order, fields, details): the changed
    ones in one UPDATE with their events, the journal lines of those that settled in one
    write. Returns how many changed (or failed: exchange_cancelled)."""
    rows, unchanged, failed = [], [], 0
    for order, fields, details in updates:
        unasked_cancel = fields.get("exchange_state") == "cancelled" and not fields.get("filled_amount")
        if unasked_cancel and order.status == OrderStatus.SUCCESS and order.cancel_requested_at is None:
            failed += _exchange_cancelled(order, actor=actor, details=details, fields=fields)  # rare
        elif any(getattr(order, n) != v for n, v in fields.items() if n != "exchange_checked_at"):
            rows.append((order, fields, details))
        else:
            unchanged.append(order.pk)
    with transaction.atomic():
        flush_journal_marks()
        if unchanged:
            Order.objects.filter(pk__in=unchanged).update(exchange_checked_at=timezone.now())
        if not rows:
            return failed
        settled = []
        for order, fields, _ in rows:
            if fields.get("exchange_state") in SETTLED_STATES and order.exchange_state not in SETTLED_STATES:
                settled.append(order)
            for name, value in fields.items():
                setattr(order, name, value)
        _update_rows([order for order, _, _ in rows], sorted({n for _, fields, _ in rows for n in fields}))
        events = [
            _event_row(kind="exchange", order=order, actor=actor, details=details, journal=order in settled)
            for order, _, details in rows
        ]
        OrderEvent.objects.bulk_create(events)
        for order in settled:
            notifications.order_settled(order=order)
    if settled:
        owed = [event for event in events if event.journal_pending]
        transaction.on_commit(lambda: _journal_many(owed, settled))
    return failed + len(rows)


def order_created(orders: list[Order], *, actor: Actor) -> None:
    """The `created` events of freshly queued orders (in the submit's transaction)."""
    flush_journal_marks()
    OrderEvent.objects.bulk_create(
        [
            OrderEvent(
                kind="created",
                order=order,
                account_id=order.account_id,
                to_status=order.status,
                actor=actor.kind,
                user=actor.real_user,
                username=actor.username,
                at=order.created_at,
            )
            for order in orders
        ]
    )


def _event(*, kind: str, order: Order | None = None, actor: Actor, details=None, journal=False, **fields) -> OrderEvent:
    event = _event_row(kind=kind, order=order, actor=actor, details=details, journal=journal, **fields)
    event.save(force_insert=True)
    return event


def _event_row(
    *, kind: str, order: Order | None = None, actor: Actor, details=None, journal=False, **fields
) -> OrderEvent:
    return OrderEvent(
        kind=kind,
        order=order,
        account_id=order.account_id if order is not None else fields.pop("account_id", ""),
        actor=actor.kind,
        user=actor.real_user,
        username=actor.username,
        details=_jsonable(details or {}),
        journal_pending=journal,
        **fields,
    )


def _events(orders: list[Order], *, actor: Actor, **fields) -> None:
    OrderEvent.objects.bulk_create([_event_row(kind="status", order=order, actor=actor, **fields) for order in orders])


def _jsonable(details: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in details.items()}


def _notify_status(order: Order, *, before: str, reason: str) -> None:
    if order.status in OrderStatus.final():
        notifications.order_finished(order=order)


def order_stuck(order: Order, *, reason: str, actor: Actor) -> None:
    """The order's outcome could not be established: it stays (or becomes) `unknown`
    with the reason, and an operator is told."""
    with transaction.atomic():
        if order.status == OrderStatus.PROCESSING:
            move(order, OrderStatus.UNKNOWN, actor=actor, only_from=(OrderStatus.PROCESSING,), reason=reason)
        Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
            error_code="unresolved", error_message=reason
        )
        order.error_code, order.error_message = "unresolved", reason
        _event(kind="stuck", order=order, actor=actor, reason=reason)
        notifications.order_stuck(order=order, reason=reason)


# --- the journal, written from the events -----------------------------------------------


# Events whose journal line is written but not yet marked: marked in this process's next
# transaction (or by flush_journal_marks), not in one of their own. A crash before that
# leaves them to replay_journal, which finds their lines and only marks them.
_marks_owed: list[int] = []


def _journal(event: OrderEvent, order: Order) -> None:
    """The event's journal line, from the order as the change left it."""
    journal_append(order=order, at=event.at)
    _marks_owed.append(event.pk)


def _journal_many(events: list[OrderEvent], orders: list[Order]) -> None:
    journal_append_many(orders=orders, at=events[0].at)
    _marks_owed.extend(event.pk for event in events if event.pk is not None)


def flush_journal_marks() -> None:
    """Mark the journal lines written since the last mark (one UPDATE)."""
    if _marks_owed:
        owed = list(_marks_owed)
        _marks_owed.clear()
        OrderEvent.objects.filter(pk__in=owed).update(journal_pending=False)


def replay_journal(*, older_than: timedelta = JOURNAL_GRACE) -> int:
    """Write the journal lines a crash left owed (events committed, line not marked
    written): a line already in the file is only marked, never written twice."""
    flush_journal_marks()
    owed = list(
        OrderEvent.objects.filter(journal_pending=True, at__lt=timezone.now() - older_than)
        .select_related("order__account", "order__retry_of")
        .order_by("id")[:1000]
    )
    present = journal_lines_present(owed)
    missing = [event for event in owed if event.pk not in present]
    for event in missing:
        journal_append(order=event.order, at=event.at)
    OrderEvent.objects.filter(pk__in=[event.pk for event in owed]).update(journal_pending=False)
    return len(missing)


# --- accounts and the desk --------------------------------------------------------------


def pause_account(*, account_id: str, reason: str, actor: Actor) -> bool:
    """Pause one account (its orders wait). False when unknown or already paused."""
    with transaction.atomic():
        if not Account.objects.filter(pk=account_id, paused=False).update(paused=True, pause_reason=reason):
            return False
        _event(kind="account_paused", account_id=account_id, actor=actor, reason=reason)
        notifications.account_paused(account_id=account_id, reason=reason)
    return True


def resume_account(*, account_id: str, actor: Actor) -> bool:
    with transaction.atomic():
        if not Account.objects.filter(pk=account_id, paused=True).update(paused=False, pause_reason=""):
            return False
        _event(kind="account_resumed", account_id=account_id, actor=actor)
    return True


def pause_trading(*, reason: str, actor: Actor) -> bool:
    with transaction.atomic():
        Control.objects.get_or_create(pk=1)
        changed = Control.objects.filter(pk=1).update(
            trading_paused=True, reason=reason, changed_by=actor.username or actor.kind, changed_at=timezone.now()
        )
        _event(kind="trading_paused", actor=actor, reason=reason)
        notifications.account_paused(account_id="all accounts", reason=reason)
    return bool(changed)


def resume_trading(*, actor: Actor) -> bool:
    with transaction.atomic():
        Control.objects.get_or_create(pk=1)
        changed = Control.objects.filter(pk=1, trading_paused=True).update(
            trading_paused=False, reason="", changed_by=actor.username or actor.kind, changed_at=timezone.now()
        )
        if changed:
            _event(kind="trading_resumed", actor=actor)
    return bool(changed)


def degrade_account(*, account_id: str, reason: str) -> bool:
    """The exchange cannot be reached, or is under maintenance, for this account: its
    orders are held until it answers again or they expire."""
    with transaction.atomic():
        if not Account.objects.filter(pk=account_id, degraded_since__isnull=True).update(
            degraded_reason=reason, degraded_since=timezone.now()
        ):
            Account.objects.filter(pk=account_id).exclude(degraded_reason=reason).update(degraded_reason=reason)
            return False
        _event(kind="account_degraded", account_id=account_id, actor=WORKER, reason=reason)
    logger.warning("account %s degraded: %s", account_id, reason)
    return True


def recover_account(*, account_id: str) -> bool:
    with transaction.atomic():
        if not Account.objects.filter(pk=account_id, degraded_since__isnull=False).update(
            degraded_reason="", degraded_since=None
        ):
            return False
        _event(kind="account_recovered", account_id=account_id, actor=WORKER)
    logger.info("account %s reaches the exchange again", account_id)
    return True


def service_event(
    *, kind: str, reason: str = "", account_id: str = "", actor: str = EventActor.SYSTEM, details: dict | None = None
) -> OrderEvent:
    """An event with no order and no state of ours behind it (a cluster up or down)."""
    return _event(kind=kind, account_id=account_id, actor=Actor(actor), reason=reason, details=details)
