"""django-q2's ORM broker, with a nudge: the embedded default's task queue.

The ORM broker's pusher looks for new tasks, and when there are none sleeps `poll`
seconds before looking again, so a task waits half of that on average before a worker
hears of it. Here the pusher waits on a local datagram socket instead of sleeping, and
whoever enqueues a task sends one byte to that socket once the task's transaction has
committed: the pusher looks at once. The socket is only a hint. The table is still the
queue, and a lost or extra nudge changes nothing but timing. A listening pusher still
looks every NUDGED_POLL seconds without a nudge (for a task no one nudged it about: one
re-delivered after a worker died); one that could not bind the socket polls every `poll`
seconds, as django-q2's does.
"""

import hashlib
import os
import select
import socket
import tempfile
import threading
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

# Unix socket paths are limited to 108 bytes (107 and the terminating NUL).
_MAX_PATH = 100
# A listening pusher's longest wait (or `poll`, if longer). Every enqueue nudges it, so
# its looks meanwhile would find nothing but cost a query each.
NUDGED_POLL = 1.0


def wake_path() -> str:
    """Where this installation's pusher listens: beside the SQLite file (so processes
    sharing the database's folder share it), else in the temporary folder, named after
    the database and the cluster."""
    database = settings.DATABASES["default"]
    name = str(database.get("NAME") or "")
    if database["ENGINE"].endswith("sqlite3") and name and name != ":memory:":
        beside = f"{name}.{Conf.CLUSTER_NAME}.wake"
        if len(beside) <= _MAX_PATH:
            return beside
    key = f"{database['ENGINE']}|{database.get('HOST', '')}|{database.get('PORT', '')}|{name}|{Conf.CLUSTER_NAME}"
    return str(Path(tempfile.gettempdir()) / f"qwake-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock")


class _Sender(threading.local):
    sock: socket.socket | None = None


_sender = _Sender()


def nudge(path: str) -> None:
    """One byte to the pusher's socket, never blocking and never failing: without a
    listener (or with its buffer full, when it is awake anyway) there is nothing to do."""
    if _sender.sock is None:
        _sender.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sender.sock.setblocking(False)
    try:
        _sender.sock.sendto(b"!", path)
    except OSError:
        pass


class NudgedORM(ORM):
    """The ORM broker; its pusher wakes on a nudge instead of only every `poll` seconds."""

    def __init__(self, list_key: str = None):
        super().__init__(list_key=list_key)
        self._path = wake_path()
        self._listener: socket.socket | None = None
        self._listen_failed = False

    def enqueue(self, task):
        task_id = super().enqueue(task)
        transaction.on_commit(lambda: nudge(self._path), using=Conf.ORM)
        return task_id

    def dequeue(self):
        if not self._listen():
            return super().dequeue()
        tasks = self._take()
        if tasks:
            return tasks
        # Empty: wait for a nudge, at most NUDGED_POLL seconds, then take every nudge
        # that came meanwhile (they all asked for this one look).
        readable, _, _ = select.select([self._listener], [], [], max(NUDGED_POLL, Conf.POLL))
        while readable:
            try:
                self._listener.recv(64)
            except BlockingIOError:
                break
        return None

    def _take(self) -> list:
        """ORM.dequeue without its sleep: claim the due tasks, each by a compare-and-set
        of its lock (another cluster may take it first)."""
        tasks = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())[: Conf.BULK]
        return [
            (task.pk, task.payload)
            for task in tasks
            if self.get_connection().filter(id=task.id, lock=task.lock).update(lock=self.timeout(task))
        ]

    def _listen(self) -> bool:
        """Bind the pusher's socket on its first look (only the pusher dequeues); False
        when it cannot be bound (then the broker polls, as django-q2's does)."""
        if self._listener is None and not self._listen_failed:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                # A file left by an earlier pusher of this installation: the latest wins.
                if os.path.exists(self._path):
                    os.unlink(self._path)
                listener.bind(self._path)
                listener.setblocking(False)
            except OSError:
                listener.close()
                self._listen_failed = True
            else:
                self._listener = listener
        return self._listener is not None
