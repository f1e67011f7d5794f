"""Status reads (orders.selectors.status): the supervisor's stall check."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import OrderStatus
from orders.selectors import cluster_stalled
from orders.services.controls import pause, resume
from tests.helpers import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(accounts):
    """An order queued two minutes ago on an account nobody holds; nothing started since."""
    return make_order(created_at=timezone.now() - timedelta(minutes=2), status=OrderStatus.QUEUED)


def test_orders_waiting_on_an_idle_account_with_nothing_started_are_a_stall(waiting):
    assert cluster_stalled(seconds=60)
    assert not cluster_stalled(seconds=600)  # not waiting that long yet


def test_orders_held_by_a_pause_are_no_stall(waiting):
    pause(account_id=None, reason="desk-wide pause")
    assert not cluster_stalled(seconds=60)  # the workers have nothing to take
    resume(account_id=None)

    pause(account_id=waiting.account_id, reason="this account only")
    assert not cluster_stalled(seconds=60)
