"""The SQLite backend queues writers on a lock file instead of SQLite's busy polling
(scheduler_site/backends/sqlite3)."""

import fcntl
import os
import threading
import time

import pytest
from django.db import connection, transaction

from orders.models import AuditEvent

# The writer lock is SQLite's: `make test-postgres` leaves these to the SQLite leg.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def lock_file(transactional_db):
    fd = os.open(f"{os.path.abspath(connection.settings_dict['NAME'])}-writer.lock", os.O_RDWR | os.O_CREAT)
    yield fd
    os.close(fd)


def _free(fd) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def test_it_holds_the_writer_lock_from_begin_to_commit(lock_file):
    assert _free(lock_file)
    with transaction.atomic():
        assert not _free(lock_file)
        AuditEvent.objects.create(action="test")
        with transaction.atomic():  # a savepoint keeps the same lock
            assert not _free(lock_file)
        assert not _free(lock_file)
    assert _free(lock_file)
    assert AuditEvent.objects.filter(action="test").count() == 1


def test_it_releases_the_writer_lock_on_rollback(lock_file):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            AuditEvent.objects.create(action="test")
            raise RuntimeError
    assert _free(lock_file)
    assert not AuditEvent.objects.exists()


def test_it_releases_the_writer_lock_when_the_connection_closes_mid_transaction(lock_file):
    with transaction.atomic():
        assert not _free(lock_file)
        connection.close()
    assert _free(lock_file)


def test_a_write_outside_a_transaction_waits_for_the_lock_and_reads_do_not(lock_file):
    AuditEvent.objects.create(action="before")
    fcntl.flock(lock_file, fcntl.LOCK_EX)  # another writer, as another process would hold it
    done = threading.Event()

    def write():
        try:
            AuditEvent.objects.create(action="queued")
        finally:
            connection.close()
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert AuditEvent.objects.count() == 1  # reading needs no lock
        assert not done.wait(0.3)  # the write waits in the queue
    finally:
        fcntl.flock(lock_file, fcntl.LOCK_UN)
    started = time.monotonic()
    assert done.wait(5)
    assert time.monotonic() - started < 1  # woken at once, not after a busy-timeout step
    writer.join()
    assert AuditEvent.objects.filter(action="queued").exists()
    assert _free(lock_file)


def test_a_forked_child_leaves_the_parents_lock_alone(lock_file):
    with transaction.atomic():
        AuditEvent.objects.create(action="parent")
        pid = os.fork()
        if pid == 0:  # the child drops the inherited connection, as django-q2's workers do
            try:
                inherited = connection._writer_fd  # closed at the fork already
                connection.close()
                os._exit(0 if inherited is None else 2)
            except BaseException:
                os._exit(1)
        assert os.waitpid(pid, 0)[1] == 0
        assert not _free(lock_file)  # still the parent's
    assert _free(lock_file)
