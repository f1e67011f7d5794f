"""The per-account lease: at most one drainer per account, across processes and hosts.

Taken and renewed by a conditional UPDATE compared against the database clock (every
host sees the same clock), so it holds on SQLite, where SELECT ... FOR UPDATE does
nothing, and on PostgreSQL alike. A placement is sent only after `cover()` has checked,
in the database, that the lease outlives the request's deadline plus the clock margin;
an expired lease's orders are taken over by the next drainer, which never sends before
their last deadline has passed (orders.services.reconcile).
"""

import math
import os
import socket
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper, Q, Value
from django.db.models.functions import Now

from orders.exchanges.base import Exchange
from orders.models import Account, lease_free

# Requests one exchange step may make after a lease check: loading markets (3), setting
# leverage (1), placing the order (1).
STEP_REQUESTS = 5


def _seconds(name: str) -> float:
    return float(settings.ORDER_SCHEDULER[name])


def _db_in(seconds: float):
    return ExpressionWrapper(Now() + Value(timedelta(seconds=seconds)), output_field=DateTimeField())


def new_lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(*, account_id: str, owner: str) -> bool:
    until = _db_in(_seconds("LEASE_SECONDS"))
    return Account.objects.filter(pk=account_id).filter(lease_free()).update(lease_owner=owner, lease_until=until) == 1


def renew_lease(*, account_id: str, owner: str) -> bool:
    return (
        Account.objects.filter(pk=account_id, lease_owner=owner).update(lease_until=_db_in(_seconds("LEASE_SECONDS")))
        == 1
    )


def release_lease(*, account_id: str, owner: str) -> None:
    Account.objects.filter(pk=account_id, lease_owner=owner).update(lease_owner="", lease_until=None)


def held_for(seconds: float, *, owner: str) -> Q:
    """Condition on Account rows: `owner` holds the lease for at least `seconds` more, by
    the database clock (used inside the UPDATE that commits a placement's deadline)."""
    return Q(lease_owner=owner, lease_until__gt=_db_in(seconds))


class Lease:
    """A drainer's hold on an account.

    keep() before each exchange step renews it only when less than `margin` seconds of
    it may remain, counted from the start of the last renewal: a lower bound of what is
    left whatever the hosts' clocks say, since the database stamps the expiry after that
    moment. The margin covers the longest step the exchange adapter can take and at
    least half the lease, so a busy account costs one UPDATE per half lease instead of
    one per order. Right before a placement leaves, the send path checks in the database
    that the lease outlives the request's deadline (held_for), whatever keep() assumed.

    Until `busy_until` (monotonic) the holder may have a request at the exchange that
    could still be processed: the lease is then never released early (a task timeout or
    any BaseException mid-send lets it expire instead), so nobody else sends for the
    account before that request's deadline has passed.
    """

    def __init__(self, *, account_id: str, owner: str):
        self.account_id = account_id
        self.owner = owner
        self.renewed_at = -math.inf
        self.margin = _seconds("LEASE_SECONDS")  # renew before every step until sized
        self.busy_until = -math.inf

    def acquire(self) -> bool:
        started = time.monotonic()
        if not acquire_lease(account_id=self.account_id, owner=self.owner):
            return False
        self.renewed_at = started
        return True

    def size_for(self, exchange: Exchange) -> None:
        lease = _seconds("LEASE_SECONDS")
        step = STEP_REQUESTS * (getattr(exchange, "timeout_seconds", math.inf) + 1.0)
        # A placement also needs the lease to outlive its deadline (checked at the send).
        send = _seconds("PLACE_DEADLINE_SECONDS") + _seconds("CLOCK_MARGIN_SECONDS") + 0.5
        self.margin = min(lease, max(lease / 2, step, send))

    def keep(self) -> bool:
        """True when the lease is still ours for at least `margin` seconds."""
        if _seconds("LEASE_SECONDS") - (time.monotonic() - self.renewed_at) > self.margin:
            return True
        return self.renew()

    def renew(self) -> bool:
        started = time.monotonic()
        if not renew_lease(account_id=self.account_id, owner=self.owner):
            return False
        self.renewed_at = started
        return True

    def holds_for(self, seconds: float) -> bool:
        """Whether the database says this lease outlives `seconds` from now."""
        return Account.objects.filter(pk=self.account_id).filter(held_for(seconds, owner=self.owner)).exists()

    def release(self) -> None:
        if time.monotonic() < self.busy_until:
            return  # a request may still be processed at the exchange: let the lease run out
        release_lease(account_id=self.account_id, owner=self.owner)
