"""The embedded default's task queue: django-q2's ORM broker, its pusher woken by a
nudge once a task's transaction commits (scheduler_site.taskqueue)."""

import socket
import threading
import time
from pathlib import Path

import pytest
from django.db import transaction
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from scheduler_site.taskqueue import NudgedORM, wake_path
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite_only]

# Far longer than any test here may wait: a pusher that wakes sooner was nudged.
LONG_POLL = 60.0


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(Conf, "POLL", LONG_POLL)
    broker = NudgedORM(list_key=Conf.CLUSTER_NAME)
    yield broker
    if broker._listener is not None:
        broker._listener.close()
    Path(wake_path()).unlink(missing_ok=True)


def look_in_thread(broker) -> tuple[threading.Thread, list]:
    """One dequeue() in a thread, as the pusher makes it; its result and duration."""
    seen = []

    def look():
        started = time.monotonic()
        seen.append((broker.dequeue(), time.monotonic() - started))

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    return thread, seen


def listening(broker) -> None:
    wait_for(lambda: broker._listener is not None, timeout=10, message="the pusher's socket to be bound")


def test_the_socket_sits_beside_the_sqlite_file():
    from django.conf import settings

    assert wake_path() == f"{settings.DATABASES['default']['NAME']}.{Conf.CLUSTER_NAME}.wake"


def test_an_enqueued_task_wakes_a_waiting_pusher_only_after_its_commit(broker):
    thread, seen = look_in_thread(broker)
    listening(broker)
    with transaction.atomic():
        async_task("orders.tasks.recover", broker=broker)
        thread.join(0.5)
        assert thread.is_alive(), "the pusher woke before the task's transaction committed"
    thread.join(LONG_POLL / 2)
    assert not thread.is_alive(), "the commit did not wake the pusher"
    tasks, waited = seen[0]
    assert tasks is None and waited < LONG_POLL
    # The look after the nudge finds the task, claimed for this pusher.
    taken = broker.dequeue()
    assert [pk for pk, _ in taken] == list(OrmQ.objects.values_list("pk", flat=True))


def test_a_task_enqueued_while_the_pusher_is_busy_is_found_at_its_next_look(broker):
    async_task("orders.tasks.recover", broker=broker)
    first = broker.dequeue()  # binds the socket, then finds the task before any wait
    assert broker._listener is not None
    # The pusher is busy with that one (not waiting) while another comes in.
    async_task("orders.tasks.recover", broker=broker)
    started = time.monotonic()
    second = broker.dequeue()
    assert len(first) == len(second) == 1 and first[0][0] != second[0][0]
    assert time.monotonic() - started < LONG_POLL / 2


def test_enqueueing_without_a_listening_pusher_neither_fails_nor_waits(broker):
    started = time.monotonic()
    for _ in range(3):
        async_task("orders.tasks.recover", broker=broker)
    assert OrmQ.objects.count() == 3
    assert time.monotonic() - started < LONG_POLL / 2


def test_a_socket_file_left_by_an_earlier_pusher_is_taken_over(broker):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(wake_path())
    stale.close()  # the file stays, nobody listens
    thread, seen = look_in_thread(broker)
    listening(broker)
    async_task("orders.tasks.recover", broker=broker)
    thread.join(LONG_POLL / 2)
    assert not thread.is_alive() and seen[0][0] is None


def test_a_pusher_that_cannot_bind_polls_like_django_q2(monkeypatch, tmp_path):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    monkeypatch.setattr("scheduler_site.taskqueue.wake_path", lambda: str(tmp_path / "missing-folder" / "wake.sock"))
    broker = NudgedORM(list_key=Conf.CLUSTER_NAME)
    assert broker.dequeue() is None
    assert broker._listener is None and broker._listen_failed
    async_task("orders.tasks.recover", broker=broker)
    assert len(broker.dequeue()) == 1


def test_a_listening_pusher_finds_a_task_no_one_nudged_about_after_the_nudged_poll(monkeypatch, broker):
    monkeypatch.setattr(Conf, "POLL", 0.01)
    monkeypatch.setattr("scheduler_site.taskqueue.NUDGED_POLL", 0.3)
    thread, seen = look_in_thread(broker)
    listening(broker)
    # A task no one nudges about (as one re-delivered after its worker died).
    ORM.enqueue(broker, "payload")
    thread.join(5)
    tasks, waited = seen[0]
    # Not django-q2's 0.01 s poll: the nudged one.
    assert tasks is None and waited >= 0.25
    assert [payload for _, payload in broker.dequeue()] == ["payload"]
