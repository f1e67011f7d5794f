"""The account lease (orders.services.lease): kept without a write while it can be, renewed when a step may outlast it, lost to another holder."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.exchanges import get_exchange
from orders.models import Account
from orders.services import lease

pytestmark = pytest.mark.django_db


class Clock:
    """The lease's monotonic clock, moved forward by the test."""

    def __init__(self, monkeypatch):
        self.offset = 0.0
        real = lease.time.monotonic
        monkeypatch.setattr(lease.time, "monotonic", lambda: real() + self.offset)


def lease_until(account_id="account_main"):
    return Account.objects.get(pk=account_id).lease_until


def test_it_keeps_the_lease_without_a_write_while_more_than_the_margin_remains(accounts, settings, monkeypatch):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "LEASE_SECONDS": 60}
    clock = Clock(monkeypatch)
    held = lease.Lease(account_id="account_main", owner="me")
    assert held.acquire()
    held.size_for(get_exchange(Account.objects.get(pk="account_main")))  # paper: 1 s per request
    taken_until = lease_until()

    clock.offset = 29.0
    with CaptureQueriesContext(connection) as queries:
        assert held.keep()
    assert len(queries) == 0 and lease_until() == taken_until

    clock.offset = 31.0  # less than half of the 60 s left: renewed, counted from now
    assert held.keep()
    assert lease_until() > taken_until
    assert held.renewed_at > 30


def test_it_renews_before_every_step_when_a_step_may_outlast_half_the_lease(accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "LEASE_SECONDS": 8}
    held = lease.Lease(account_id="account_main", owner="me")
    assert held.acquire()

    class SlowVenue:
        timeout_seconds = 10.0  # five requests of up to 10 s would outlive any part of 8 s

    held.size_for(SlowVenue())
    with CaptureQueriesContext(connection) as queries:
        assert held.keep() and held.keep()
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE", "UPDATE"]


def test_it_reports_a_lease_lost_to_another_holder(accounts, settings, monkeypatch):
    clock = Clock(monkeypatch)
    held = lease.Lease(account_id="account_main", owner="me")
    assert held.acquire()
    Account.objects.filter(pk="account_main").update(lease_owner="someone-else")
    clock.offset = settings.ORDER_SCHEDULER["LEASE_SECONDS"]

    assert not held.keep()
    assert Account.objects.get(pk="account_main").lease_owner == "someone-else"
