"""gunicorn settings for `manage.py serve` (passed as `--config python:orders.gunicorn_conf`).

gthread workers serve each request on a pool thread; an open event stream keeps its
thread for as long as it lasts (waiting on a threading.Event, no CPU, no database
connection). `serve` sizes the pool as API_THREADS threads for the API plus
ORDER_SCHEDULER_STREAMS_PER_WORKER for streams, and each process refuses streams past
that number (503), so streams can never take the API's threads.
"""

import signal
import threading

# What `serve` gave the API before streams existed; also how many pool threads keep a
# persistent database connection (see post_worker_init).
API_THREADS = 4


def post_worker_init(worker):
    """Set up a worker's threads for streams beside the API: see the two steps."""
    _end_streams_on_sigterm()
    _share_idle_connections()


def _end_streams_on_sigterm() -> None:
    """On the worker's graceful stop (SIGTERM from the gunicorn master), end every open
    stream at once with a `shutdown` frame, so the worker exits well within its graceful
    timeout and clients reconnect (to a restarted server) and resume."""
    from orders.services import stream

    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        stream.hub.close()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)


def _share_idle_connections() -> None:
    """Keep database connections as few, and as reused, as with API_THREADS threads.

    Django keeps one persistent connection per thread (CONN_MAX_AGE), the pool has
    hundreds of threads, and idle pool threads take turns at new requests, so each
    request would find a thread without a connection (a new connection per request,
    costly on PostgreSQL) and, in the end, every thread would hold one (PostgreSQL
    refuses clients past max_connections). Instead a request borrows an idle connection
    when its thread has none, and gives it back when it ends; at most API_THREADS idle
    connections are kept, any more are closed. A stream gives its connection back before
    it starts waiting (orders.services.stream.release_connection)."""
    from django.core.signals import request_finished, request_started
    from django.db import DEFAULT_DB_ALIAS, connections

    from orders.services import stream

    idle: list = []  # connected DatabaseWrappers that no request is using
    lock = threading.Lock()

    def borrow(**kwargs):
        if connections[DEFAULT_DB_ALIAS].connection is not None:
            return
        with lock:
            wrapper = idle.pop() if idle else None
        if wrapper is None:
            return
        wrapper.dec_thread_sharing()
        wrapper._thread_ident = threading.get_ident()  # its owner now (Django's validate_thread_sharing)
        connections[DEFAULT_DB_ALIAS] = wrapper
        wrapper.close_if_unusable_or_obsolete()

    def give_back(**kwargs):
        wrapper = connections[DEFAULT_DB_ALIAS]
        if wrapper.connection is None or wrapper.in_atomic_block:
            return
        with lock:
            keep = len(idle) < API_THREADS
            if keep:
                wrapper.inc_thread_sharing()
                idle.append(wrapper)
        if keep:
            del connections[DEFAULT_DB_ALIAS]  # this thread makes a new (unconnected) one when needed
        else:
            wrapper.close()

    # After Django's own receivers (connected when django.db was imported), which close
    # a connection that is too old or broken.
    request_started.connect(borrow, weak=False, dispatch_uid="orders.gunicorn_conf.borrow")
    request_finished.connect(give_back, weak=False, dispatch_uid="orders.gunicorn_conf.give_back")
    stream.release_connection = give_back
