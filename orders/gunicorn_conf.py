"""gunicorn settings for `manage.py serve` (passed as `--config python:orders.gunicorn_conf`).

gthread workers serve each request on a pool thread; an open event stream keeps its
thread for as long as it lasts (waiting on a threading.Event, no CPU, no database
connection). `serve` sizes the pool as 4 threads for the API plus
ORDER_SCHEDULER_STREAMS_PER_WORKER for streams, and each process refuses streams past
that number (503), so streams can never take the API's threads.
"""

import signal


def post_worker_init(worker):
    """On the worker's graceful stop (SIGTERM from the gunicorn master), end every open
    stream at once with a `shutdown` frame, so the worker exits in well under its
    graceful timeout and clients reconnect (to a restarted server) and resume."""
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        from orders.services.stream import hub

        hub.close()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
