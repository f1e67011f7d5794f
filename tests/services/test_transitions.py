"""orders.services.transitions: the only writer of order status, account pause and the
desk switch, with an event per change and the journal written from the events."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.models import Account, Control, Order, OrderEvent, OrderStatus
from orders.services import transitions
from orders.services.journal import journal_path
from tests.helpers import submit

pytestmark = pytest.mark.django_db


def test_it_records_a_created_event_for_every_submitted_order(accounts):
    order = submit()

    [event] = OrderEvent.objects.filter(order=order)
    assert (event.kind, event.to_status, event.actor, event.account_id) == ("created", "queued", "user", "account_main")


def test_it_moves_an_order_with_an_event_carrying_who_and_why(accounts, admin_user):
    order = submit()

    assert transitions.move(
        order, OrderStatus.CANCELLED, actor=transitions.person(admin_user), reason="not wanted", error_code="cancelled"
    )

    order.refresh_from_db()
    assert (order.status, order.error_code) == ("cancelled", "cancelled") and order.finished_at is not None
    event = OrderEvent.objects.filter(order=order, kind="status").get()
    assert (event.from_status, event.to_status, event.actor, event.username, event.reason) == (
        "queued",
        "cancelled",
        "user",
        "root",
        "not wanted",
    )
    assert event.journal_pending  # the line follows the commit


def test_it_refuses_a_transition_the_table_does_not_allow(accounts):
    order = submit()

    with pytest.raises(transitions.NotAllowed):
        transitions.move(order, OrderStatus.QUEUED, actor=transitions.WORKER)
    with pytest.raises(transitions.NotAllowed):
        transitions.move(order, OrderStatus.SUCCESS, actor=transitions.WORKER, only_from=(OrderStatus.QUEUED,))
    assert Order.objects.get(pk=order.pk).status == OrderStatus.QUEUED
    assert not OrderEvent.objects.filter(order=order, kind="status").exists()


def test_it_changes_nothing_when_the_order_left_the_expected_status_meanwhile(accounts):
    order = submit()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)  # someone else, first

    assert not transitions.move(
        order, OrderStatus.PROCESSING, actor=transitions.WORKER, only_from=(OrderStatus.QUEUED,)
    )
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert not OrderEvent.objects.filter(order=order, kind="status").exists()


def test_it_writes_the_journal_line_after_the_commit(accounts, journal_dir, django_capture_on_commit_callbacks):
    order = submit()
    with django_capture_on_commit_callbacks(execute=True):
        transitions.move(order, OrderStatus.EXPIRED, actor=transitions.RECOVERY, error_code="expired")

    [line] = journal_path(timezone.localdate()).read_text().splitlines()
    assert (json.loads(line)["request_id"], json.loads(line)["status"]) == (order.request_id, "expired")
    # Marked written in this process's next transaction, or by the flush.
    transitions.flush_journal_marks()
    assert not OrderEvent.objects.get(order=order, kind="status").journal_pending


def test_it_replays_a_journal_line_a_crash_left_owed_exactly_once(accounts, journal_dir):
    order = submit()
    # The change committed, then the process died before the line was written.
    transitions.move(order, OrderStatus.EXPIRED, actor=transitions.RECOVERY, error_code="expired")
    OrderEvent.objects.filter(order=order, kind="status").update(at=timezone.now() - timedelta(minutes=5))

    assert transitions.replay_journal() == 1
    assert transitions.replay_journal() == 0

    lines = journal_path(timezone.localdate()).read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [order.request_id]


def test_it_marks_without_writing_a_line_that_reached_the_file_before_the_crash(accounts, journal_dir):
    from orders.services.journal import journal_append

    order = submit()
    transitions.move(order, OrderStatus.EXPIRED, actor=transitions.RECOVERY, error_code="expired")
    journal_append(order=Order.objects.get(pk=order.pk))  # written, but not marked, then the crash
    OrderEvent.objects.filter(order=order, kind="status").update(at=timezone.now() - timedelta(minutes=5))

    assert transitions.replay_journal() == 0

    assert len(journal_path(timezone.localdate()).read_text().splitlines()) == 1
    assert not OrderEvent.objects.filter(journal_pending=True).exists()


def test_it_fails_a_successful_order_the_exchange_cancelled_unfilled(accounts, journal_dir):
    order = submit()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SUCCESS, exchange_state="submitted")
    order.refresh_from_db()

    assert transitions.exchange_update(
        order, actor=transitions.WORKER, details={}, exchange_state="cancelled", filled_amount=Decimal(0)
    )

    order.refresh_from_db()
    assert (order.status, order.error_code, order.exchange_state) == ("failed", "exchange_cancelled", "cancelled")
    event = OrderEvent.objects.get(order=order, kind="status")
    assert (event.from_status, event.to_status) == ("success", "failed")


def test_it_owes_a_second_journal_line_when_the_exchange_state_settles(accounts):
    order = submit()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SUCCESS, exchange_state="submitted")
    order.refresh_from_db()

    changed = transitions.exchange_update(
        order, actor=transitions.WORKER, details={}, exchange_state="filled", filled_amount=Decimal("0.001")
    )
    unchanged = transitions.exchange_update(
        order, actor=transitions.WORKER, details={}, exchange_state="filled", filled_amount=Decimal("0.001")
    )

    assert (changed, unchanged) == (True, False)
    [event] = OrderEvent.objects.filter(order=order, kind="exchange")
    assert event.journal_pending


def test_it_pauses_and_resumes_an_account_and_the_desk_with_events(accounts, admin_user):
    operator = transitions.person(admin_user, operator=True)

    assert transitions.pause_account(account_id="account_main", reason="checking", actor=operator)
    assert not transitions.pause_account(account_id="account_main", reason="again", actor=operator)
    assert transitions.resume_account(account_id="account_main", actor=operator)
    assert transitions.pause_trading(reason="all stop", actor=operator)
    assert transitions.resume_trading(actor=operator)

    assert not Account.objects.get(pk="account_main").paused
    assert not Control.objects.get(pk=1).trading_paused
    kinds = list(OrderEvent.objects.order_by("id").values_list("kind", "actor"))
    assert kinds == [
        ("account_paused", "operator"),
        ("account_resumed", "operator"),
        ("trading_paused", "operator"),
        ("trading_resumed", "operator"),
    ]
