"""The live event stream: OrderEvent rows pushed to clients as Server-Sent Events.

Why Server-Sent Events: the stream only flows from the service to its clients, a
browser's EventSource reconnects by itself and sends `Last-Event-ID`, and a strategy
reads it with plain `requests` (one GET, iterate over lines): no WebSocket library, no
upgrade through proxies, the same token or session as every other endpoint.

One tail per process. Each web process runs one thread (the `Hub`) that reads the
events table after the last id it saw every POLL_SECONDS, through the (account_id, id)
and primary-key indexes, and hands each batch to that process's open streams. Every
writer, on every host, writes OrderEvent rows in the transaction of its change, so a
tail of the table sees them all with no dependency on the writer: no LISTEN/NOTIFY or
Redis channel to keep in step, and SQLite and PostgreSQL behave alike. An open stream
costs no database connection and no query of its own while it waits.

Ids are allocated before commit. On PostgreSQL two transactions can commit out of id
order (id 8 visible before id 7), so the tail does not move past a missing id until
every transaction that was running when it saw the hole has ended (then the hole is a
rollback's and stays), GAP_GRACE_SECONDS at most. Clients therefore get events in id
order, and "everything after id N" is exact. SQLite's single writer commits ids in
order, so a hole there is final at once.

A reconnecting client names the last id it saw (`Last-Event-ID` or `since=`): it gets
the events after it read from the table, then the live ones, each once. A client more
than MAX_BACKLOG events behind is told to re-read the order list (a `reset` event) and
follows from the present.
"""

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models.expressions import RawSQL

from orders.models import OrderEvent
from orders.representation import iso_datetime

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1
GAP_GRACE_SECONDS = 2.0
GAP_FLOOR_SECONDS = 0.2
MAX_BACKLOG = 10_000
READ_BATCH = 500
RETRY_MS = 2000
# Events a slow client may have waiting before it is sent a reset instead.
MAX_PENDING = 20_000
# The tail thread stops after this long without a stream (and starts with the next).
IDLE_STOP_SECONDS = 30.0

COLUMNS = (
    "id",
    "at",
    "kind",
    "account_id",
    "from_status",
    "to_status",
    "actor",
    "username",
    "reason",
    "details",
    "order__request_id",
    "order__strategy_name",
    "order__symbol",
    "order__side",
)


class StreamBusy(Exception):
    """This process holds as many streams as it may (see max_streams())."""


@dataclass(frozen=True)
class Scope:
    """Which events one stream carries.

    `allowed`: the accounts the user may see (None: all). Order events pass when their
    account is allowed and they match every filter given. Service events (no order)
    pass when their account is allowed, or they have none (the desk-wide switch, a
    cluster up or down); the account filter keeps that account's and desk-wide ones;
    strategy and request_id filters concern orders only and leave service events in,
    so a strategy following its orders also learns that its account was paused."""

    allowed: frozenset[str] | None = None
    account: str | None = None
    strategy: str | None = None
    request_id: str | None = None

    def matches(self, event: dict) -> bool:
        account = event["account_id"]
        if account and self.allowed is not None and account not in self.allowed:
            return False
        if event["request_id"] is None:
            return not (self.account and account and account != self.account)
        if self.account and account != self.account:
            return False
        if self.strategy and event["strategy_name"] != self.strategy:
            return False
        return not (self.request_id and event["request_id"] != self.request_id)


def event_payload(row: dict) -> dict:
    """The JSON a client receives for one OrderEvent row (values() of COLUMNS)."""
    return {
        "id": row["id"],
        "at": iso_datetime(row["at"]),
        "kind": row["kind"],
        "request_id": row["order__request_id"],
        "account_id": row["account_id"],
        "strategy_name": row["order__strategy_name"],
        "symbol": row["order__symbol"],
        "side": row["order__side"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "actor": row["actor"],
        "username": row["username"],
        "reason": row["reason"],
        "details": row["details"] or {},
    }


def read_events(*, after: int, upto: int | None = None, limit: int = READ_BATCH) -> list[dict]:
    """Events with after < id (<= upto), in id order, as payloads."""
    rows = OrderEvent.objects.filter(id__gt=after)
    if upto is not None:
        rows = rows.filter(id__lte=upto)
    return [event_payload(row) for row in rows.order_by("id").values(*COLUMNS)[:limit]]


def head_id() -> int:
    """The highest event id in the table (0 when empty)."""
    last = OrderEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


def release_connection() -> None:
    """Let this thread's database connection go before a stream starts waiting. Closes
    it; under `serve`, orders.gunicorn_conf makes it go back to the process's idle
    connections instead."""
    connection.close()


def max_streams() -> int:
    return settings.ORDER_SCHEDULER["STREAMS_PER_WORKER"]


class Subscription:
    """One open stream's mailbox. The hub's thread filters each batch for it and wakes
    its thread only when something matched, so a stream whose filters match nothing
    costs no wake-up per change; the batch's last id still moves its resume point."""

    def __init__(self, hub: "Hub", scope: Scope):
        self.hub = hub
        self.scope = scope
        # (matching events with their frame text, last id read)
        self.pending: deque[tuple[list[tuple[dict, str]], int]] = deque()
        self.waiting = 0  # events in `pending`
        self.overflowed = False
        self.wake = threading.Event()
        # The hub's thread delivers, the stream's thread takes: the mailbox changes under it.
        self._lock = threading.Lock()

    def deliver(self, events: list[dict], frames: dict[int, str]) -> None:
        """`frames`: each event's text, made once for every stream of the process."""
        matched = [(event, frames[event["id"]]) for event in events if self.scope.matches(event)]
        with self._lock:
            if self.waiting + len(matched) > MAX_PENDING:
                self.overflowed = True
                self.wake.set()
                return
            self.pending.append((matched, events[-1]["id"]))
            self.waiting += len(matched)
        if matched:
            self.wake.set()

    def wait(self, timeout: float) -> list[tuple[list[tuple[dict, str]], int]]:
        self.wake.wait(timeout)
        self.wake.clear()
        with self._lock:
            batches, self.waiting = list(self.pending), 0
            self.pending.clear()
        return batches

    def reset(self) -> None:
        """Drop what waits (the client is sent a reset instead)."""
        with self._lock:
            self.pending.clear()
            self.waiting = 0
            self.overflowed = False


class Hub:
    """The per-process tail of the events table (see the module's docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self.cursor = 0  # every event with id <= cursor has been handed out (or given up)
        self.closing = threading.Event()
        self._gap: tuple[float, int] | None = None  # (first seen, xmax of that snapshot)

    def subscribe(self, scope: Scope) -> tuple[Subscription, int]:
        """A new subscription and the cursor at that moment: every later batch holds
        only ids above it."""
        with self._lock:
            if self.closing.is_set():
                raise StreamBusy("the server is stopping")
            if len(self._subscriptions) >= max_streams():
                raise StreamBusy(f"this server process already holds {max_streams()} streams")
            if self._thread is None or not self._thread.is_alive():
                self.cursor = head_id()
                self._gap = None
                self._thread = threading.Thread(target=self._run, name="events-tail", daemon=True)
                self._thread.start()
            subscription = Subscription(self, scope)
            self._subscriptions.add(subscription)
            return subscription, self.cursor

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    def close(self, *, wait: float = 0.0) -> None:
        """End every stream of this process (the server is shutting down), and wait up
        to `wait` seconds for the tail thread to let its connection go."""
        self.closing.set()
        with self._lock:
            for subscription in self._subscriptions:
                subscription.wake.set()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=wait)

    def _run(self) -> None:
        idle_since = None
        try:
            while not self.closing.is_set():
                with self._lock:
                    if self._subscriptions:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > IDLE_STOP_SECONDS:
                        self._thread = None
                        return
                try:
                    more = self.poll()
                except Exception:
                    logger.exception("reading the events table failed; retrying")
                    connection.close()
                    self.closing.wait(1.0)
                    continue
                if not more:
                    self.closing.wait(POLL_SECONDS)
        finally:
            close_old_connections()
            connection.close()

    def poll(self) -> bool:
        """Read and hand out what follows the cursor; True when there may be more."""
        if connection.vendor == "postgresql":
            rows = (
                OrderEvent.objects.filter(id__gt=self.cursor)
                .order_by("id")
                .annotate(
                    snapshot_xmin=RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", ()),
                    snapshot_xmax=RawSQL("pg_snapshot_xmax(pg_current_snapshot())::text::bigint", ()),
                )
                .values(*COLUMNS, "snapshot_xmin", "snapshot_xmax")[:READ_BATCH]
            )
            rows = list(rows)
            events = [event_payload(row) for row in rows]
        else:
            rows, events = None, read_events(after=self.cursor, limit=READ_BATCH)
        accepted = []
        expected = self.cursor + 1
        for event in events:
            if event["id"] != expected and rows is not None and not self._hole_closed(rows[0]):
                break
            self._gap = None
            accepted.append(event)
            expected = event["id"] + 1
        if accepted:
            frames = {event["id"]: _frame(data=event, event_id=event["id"]) for event in accepted}
            with self._lock:
                self.cursor = accepted[-1]["id"]
                subscriptions = list(self._subscriptions)
            for subscription in subscriptions:
                subscription.deliver(accepted, frames)
        return len(events) == READ_BATCH and len(accepted) == len(events)

    def _hole_closed(self, row: dict) -> bool:
        """PostgreSQL: whether ids missing before a visible one can still appear.

        An id is taken when the row is inserted and becomes visible at commit, so a
        transaction still running when the hole was first seen may fill it. Once every
        transaction running then has ended (the oldest running now is newer than all
        of them) the hole is a rollback's and stays. SQLite needs none of this: its one
        writer at a time commits ids in order, so a hole there never fills."""
        now = time.monotonic()
        if self._gap is None:
            self._gap = (now, row["snapshot_xmax"])
            return False
        first_seen, running_below = self._gap
        if now - first_seen >= GAP_GRACE_SECONDS:
            return True
        # The floor covers the instant between taking an id and the transaction's own
        # id being assigned (an INSERT does both), when the snapshot cannot show it.
        return now - first_seen >= GAP_FLOOR_SECONDS and row["snapshot_xmin"] >= running_below


hub = Hub()


def _frame(*, data: dict, event: str | None = None, event_id: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


class Stream:
    """One stream's frames (iterate) and its end (close): a response that is closed
    before it was ever iterated still gives its subscription back."""

    def __init__(self, subscription: Subscription, frames: Iterator[str]):
        self.subscription = subscription
        self.frames = frames

    def __iter__(self) -> Iterator[str]:
        return self.frames

    def close(self) -> None:
        self.frames.close()
        self.subscription.hub.unsubscribe(self.subscription)


def open_stream(*, scope: Scope, since: int | None, heartbeat: float) -> Stream:
    """Subscribe now (so nothing that happens from here on is missed) and return the
    stream's text, frame by frame. Raises StreamBusy when this process is full."""
    subscription, horizon = hub.subscribe(scope)
    return Stream(subscription, _frames(subscription, horizon=horizon, scope=scope, since=since, heartbeat=heartbeat))


def _frames(subscription: Subscription, *, horizon: int, scope: Scope, since: int | None, heartbeat: float):
    try:
        yield f"retry: {RETRY_MS}\n\n"
        position = horizon
        if since is not None:
            behind = horizon - since
            if since > horizon and since > head_id():
                yield _reset(horizon, "unknown_event_id", f"No event {since} here (the latest is {horizon}).")
            elif behind > MAX_BACKLOG:
                yield _reset(horizon, "too_far_behind", f"{behind} events were missed (at most {MAX_BACKLOG}).")
            else:
                position = max(since, horizon)
                after = since
                while after < horizon:  # the events missed: read from the table
                    events = read_events(after=after, upto=horizon)
                    if not events:
                        break
                    for event in events:
                        if scope.matches(event):
                            yield _frame(data=event, event_id=event["id"])
                    after = events[-1]["id"]
        # The stream holds no database connection while it waits (200 streams must
        # not take 200 connections from PostgreSQL); the hub's thread reads for it.
        release_connection()
        yield _frame(event="ready", event_id=position, data={"last_event_id": position})
        last_write = time.monotonic()
        while True:
            batches = subscription.wait(max(0.0, last_write + heartbeat - time.monotonic()))
            if subscription.hub.closing.is_set():
                yield _frame(event="shutdown", data={"reason": "The server is stopping; reconnect to resume."})
                return
            if subscription.overflowed:
                subscription.reset()
                position = subscription.hub.cursor
                yield _reset(position, "too_far_behind", "This client read too slowly; events were dropped.")
                last_write = time.monotonic()
                continue
            for matched, upto in batches:
                for event, text in matched:
                    if event["id"] > position:  # else already sent (read from the table above)
                        last_write = time.monotonic()
                        yield text
                position = max(position, upto)
            if time.monotonic() - last_write >= heartbeat:
                # Keeps proxies from closing an idle connection, and moves the
                # client's resume point past the events its filters skipped.
                last_write = time.monotonic()
                yield _frame(event="heartbeat", event_id=position, data={})
    finally:
        subscription.hub.unsubscribe(subscription)


def _reset(latest: int, reason: str, message: str) -> str:
    return _frame(
        event="reset",
        event_id=latest,
        data={
            "reason": reason,
            "message": message + " Re-read GET /api/order-scheduler/orders, then follow from here.",
            "last_event_id": latest,
        },
    )
