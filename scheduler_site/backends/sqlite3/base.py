"""Django's SQLite backend, with the writers of every process queued for the write lock.

SQLite lets one connection write at a time. A connection that finds the lock taken
does not wait in a queue: its busy handler sleeps and tries again, in steps that grow
to 100 ms (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100, 100, ...), and whoever tries
at the right moment wins. Under load a writer that has waited longest sleeps longest
while newcomers keep taking the lock: with the web workers and the django-q2 workers
writing to one file, submits waited up to a second for a lock held a few milliseconds
at a time (bench/submit.py, BENCHMARKS.md).

Here each connection first takes an exclusive flock(2) on `<database>-writer.lock`,
through a file of its own (a lock belongs to an open file, so every connection, of
whatever thread or process, queues on its own), and only then asks SQLite for its
write lock, which is then almost always free. Waiting writers block in the kernel and
wake in turn the moment the lock is released. It covers a transaction from its
`BEGIN IMMEDIATE` to its commit or rollback, and a statement that writes outside a
transaction (autocommit) for that statement. The kernel drops it if the process dies
(a forked child closes its copies of the files at once, so it cannot keep a dead
parent's lock alive).

This only orders the waiters: SQLite's own lock still decides who writes and its busy
timeout still applies to anything not taking this lock (the sqlite3 shell, another
program), so correctness never depends on it. It is used only with `transaction_mode`
IMMEDIATE or EXCLUSIVE, where a transaction writes from its start. One difference: a
writer waits as long as the lock is held, where SQLite's busy timeout (20 s) would have
failed it with "database is locked"; transactions here are short and never span an
exchange call, so a holder that never ends is a bug either way.
"""

import fcntl
import os
import weakref

from django.db.backends.sqlite3 import base

# Statements that write, as they start (Django's and django-q2's SQL).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_with_files: "weakref.WeakSet[DatabaseWrapper]" = weakref.WeakSet()


def _forget_inherited_files() -> None:
    # A forked child (django-q2's workers) gets a copy of each open lock file, which
    # shares the parent's lock: were the parent to die holding it, the child's copy
    # would keep it held. Close them at once; each connection opens its own when used.
    for wrapper in list(_with_files):
        if wrapper._writer_fd is not None:
            os.close(wrapper._writer_fd)
            wrapper._writer_fd = None
        wrapper._holds_writer_lock = False
    _with_files.clear()


os.register_at_fork(after_in_child=_forget_inherited_files)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer_fd: int | None = None
        self._writer_pid = 0
        self._holds_writer_lock = False

    def _queues_writers(self) -> bool:
        return self.transaction_mode in ("IMMEDIATE", "EXCLUSIVE") and not self.is_in_memory_db()

    def _writer_file(self) -> int:
        if self._writer_fd is None:
            path = f"{os.path.abspath(self.settings_dict['NAME'])}-writer.lock"
            # Not inherited by programs this process starts (serve's children).
            self._writer_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._writer_pid = os.getpid()
            _with_files.add(self)
        return self._writer_fd

    def _take_writer_lock(self) -> None:
        fcntl.flock(self._writer_file(), fcntl.LOCK_EX)
        self._holds_writer_lock = True

    def _drop_writer_lock(self) -> None:
        if self._holds_writer_lock and self._writer_pid == os.getpid():
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)
        self._holds_writer_lock = False

    def _writes_alone(self, sql: str) -> bool:
        """A statement that writes outside a transaction: it takes the lock for itself."""
        return (
            not self._holds_writer_lock
            and self._queues_writers()
            and self.get_autocommit()
            and sql.lstrip()[:7].upper().startswith(_WRITES)
        )

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=_Cursor)
        cursor.wrapper = self
        return cursor

    def _start_transaction_under_autocommit(self):
        if self._queues_writers() and not self._holds_writer_lock:
            self._take_writer_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._drop_writer_lock()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            # After a failed COMMIT the transaction is still open: Django rolls it back.
            if self.connection is None or not self.connection.in_transaction:
                self._drop_writer_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._drop_writer_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._drop_writer_lock()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None


class _Cursor(base.SQLiteCursorWrapper):
    wrapper: DatabaseWrapper

    def execute(self, query, params=None):
        if not self.wrapper._writes_alone(query):
            return super().execute(query, params)
        self.wrapper._take_writer_lock()
        try:
            return super().execute(query, params)
        finally:
            self.wrapper._drop_writer_lock()

    def executemany(self, query, param_list):
        if not self.wrapper._writes_alone(query):
            return super().executemany(query, param_list)
        self.wrapper._take_writer_lock()
        try:
            return super().executemany(query, param_list)
        finally:
            self.wrapper._drop_writer_lock()
