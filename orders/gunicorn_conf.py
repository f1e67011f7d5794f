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
    """On the worker's graceful stop (SIGTERM from the gunicorn master), end every open
    stream at once with a `shutdown` frame, so the worker exits in well under its
    graceful timeout and clients reconnect (to a restarted server) and resume.

    And keep the database connections as few as before the streams: Django keeps one
    persistent connection per thread (CONN_MAX_AGE), the pool now has hundreds of
    threads, and idle pool threads take turns at new requests, so after a burst of
    streams every thread would come to hold a connection (PostgreSQL refuses clients
    past max_connections, 100 by default). Only the first API_THREADS threads to finish
    a request keep theirs; any other thread closes its connection when its request ends.
    """
    from django.core.signals import request_finished
    from django.db import connections

    from orders.services.stream import hub

    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        hub.close()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)

    keepers: set[int] = set()
    lock = threading.Lock()

    def limit_connections(**kwargs):
        me = threading.get_ident()
        with lock:
            if me in keepers:
                return
            if len(keepers) < API_THREADS:
                keepers.add(me)
                return
        connections.close_all()

    request_finished.connect(limit_connections, weak=False, dispatch_uid="orders.gunicorn_conf.limit_connections")
