"""Run the whole service: a production WSGI server (gunicorn), the django-q2 cluster and
a small supervisor that runs recovery and restarts a cluster that died, stopped
reporting or stopped taking work. Ctrl-C or SIGTERM stops everything it started."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.gunicorn_conf import API_THREADS
from orders.selectors import cluster_stalled, cluster_status
from orders.services import notifications
from orders.services.accounts import AccountsFileError, sync_accounts
from orders.services.recovery import recover
from orders.services.transitions import service_event

logger = logging.getLogger("orders.serve")

# How long a child may take to stop after SIGTERM before its process group is killed: on
# a stop, and when a cluster that does not work is restarted.
STOP_GRACE_SECONDS = 20.0
RESTART_GRACE_SECONDS = 5.0


class Command(BaseCommand):
    help = "Start the web server and the django-q2 cluster together, with recovery."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.HOST)
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--web-workers", type=int, default=None, help="gunicorn workers (WEB_CONCURRENCY)")
        parser.add_argument("--no-web", action="store_true", help="Run only the cluster and supervisor.")
        parser.add_argument("--no-cluster", action="store_true", help="Run only the web server.")

    def handle(self, *args, host, port, web_workers, no_web, no_cluster, **options):
        try:
            report = sync_accounts(actor="serve")
        except AccountsFileError as exc:
            raise CommandError(str(exc)) from None
        for account_id, problem in report.problems.items():
            self.stderr.write(f"account {account_id}: {problem}")
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        self.children: dict[str, subprocess.Popen] = {}
        self.commands = {}
        if not no_web:
            workers = web_workers or settings.WEB_CONCURRENCY
            self.commands["web"] = [
                sys.executable, "-m", "gunicorn", "scheduler_site.wsgi:application",
                "--bind", f"{host}:{port}", "--workers", str(workers), "--worker-class", "gthread",
                # threads for the API plus one per open event stream (orders.gunicorn_conf)
                "--threads", str(API_THREADS + settings.ORDER_SCHEDULER["STREAMS_PER_WORKER"]),
                "--config", "python:orders.gunicorn_conf",
                "--graceful-timeout", "10", "--log-level", "warning",
            ]  # fmt: skip
        if not no_cluster:
            self.commands["cluster"] = [sys.executable, manage, "qcluster"]
        for name in self.commands:
            self._start(name)
        if not no_cluster:
            notifications.scheduler_started()
        if not no_web:
            self.stdout.write(f"Order Scheduling Center on http://{host}:{port}/order-scheduler", ending="\n")
        self.stdout.flush()
        self._supervise(watch_cluster=not no_cluster)

    def _start(self, name: str) -> None:
        # Each child leads its own process group, so a terminal's Ctrl-C reaches only
        # this supervisor, which then stops each child through its parent process.
        self.children[name] = subprocess.Popen(self.commands[name], start_new_session=True)
        if name == "cluster":
            self.started_cluster = time.monotonic()
            _service_event("cluster_up", "started", pid=self.children[name].pid)

    def _restart_cluster(self, why: str) -> None:
        logger.error("restarting the django-q2 cluster: %s", why)
        # A cluster that does not work is most likely frozen and will not stop by itself:
        # a short grace, since no order executes meanwhile. Cutting a send short is safe
        # (the next drainer settles it under the deadline rule).
        self._terminate("cluster", why=why, grace=RESTART_GRACE_SECONDS)
        self._start("cluster")

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def _supervise(self, *, watch_cluster: bool) -> None:
        interval = settings.ORDER_SCHEDULER["RECOVERY_INTERVAL"]
        last_alive = time.monotonic()
        try:
            while not self.stopping:
                for name, child in list(self.children.items()):
                    if child.poll() is not None and not self.stopping:
                        logger.error("%s exited with %s; restarting it", name, child.returncode)
                        if name == "cluster":
                            _service_event("cluster_down", f"exited with {child.returncode}", pid=child.pid)
                        self._start(name)
                if watch_cluster:
                    stall = settings.ORDER_SCHEDULER["STALL_SECONDS"]
                    if cluster_status()["clusters"]:
                        last_alive = time.monotonic()
                    if time.monotonic() - last_alive > stall:
                        self._restart_cluster(f"it has not reported for {stall:g}s")
                        last_alive = time.monotonic()
                    elif cluster_stalled(seconds=stall) and time.monotonic() - self.started_cluster > stall:
                        self._restart_cluster(f"orders have waited {stall:g}s with none started")
                    try:
                        recover()
                    except Exception:
                        logger.exception("recovery pass failed")
                    try:
                        notifications.wake_if_due()
                    except Exception:
                        logger.exception("notification pass failed")
                self._sleep(interval)
        finally:
            for name in list(self.children):
                self._terminate(name, why="stopped")
            if watch_cluster:
                try:
                    notifications.scheduler_stopped()
                except Exception:
                    logger.exception("could not record the scheduler stop")

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def _terminate(self, name: str, *, why: str, grace: float = STOP_GRACE_SECONDS) -> None:
        # Signal the parent only: it stops its own children (signalling a whole django-q2
        # process group at once can hang its shutdown).
        child = self.children.get(name)
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            # Hung on shutdown (a frozen cluster): kill its whole process group, which it
            # leads, so no orphaned worker is left behind.
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        if name == "cluster":
            _service_event("cluster_down", why, pid=child.pid)


def _service_event(kind: str, reason: str, **details) -> None:
    """A cluster up or down, as a service event in the order events (the live stream
    shows it). Never stops the supervisor: a database that cannot take it is logged."""
    try:
        service_event(kind=kind, reason=reason, actor="system", details={"host": socket.gethostname(), **details})
    except Exception:
        logger.exception("could not record %s", kind)
