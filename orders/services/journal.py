"""The execution journal: one JSON line per order that reaches a final status, in
`executions_YYYYMMDD.jsonl` (date in the configured time zone), as the seed report's
older system wrote it."""

import fcntl
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from orders.models import Order
from orders.serializers import order_record

logger = logging.getLogger(__name__)


def journal_path(day) -> Path:
    return Path(settings.ORDER_SCHEDULER["LOG_DIR"]) / f"executions_{day:%Y%m%d}.jsonl"


def journal_append(*, order: Order) -> None:
    """Append the order's line. One write() of the whole line under an exclusive lock,
    so lines from concurrent workers never interleave or tear."""
    line = (json.dumps(order_record(order), ensure_ascii=False, sort_keys=False) + "\n").encode()
    path = journal_path(timezone.localdate(order.finished_at or timezone.now()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        # The database stays the truth; a full disk must not stop trading.
        logger.error("journal write failed for %s: %s", order.request_id, exc)


def _open_locked(path: Path) -> int:
    """Open the day's file for appending and take its exclusive lock. archive_logs
    (orders.services.history) removes a day's file under this same lock once it is
    compressed; a writer that opened the file before that and waited for the lock
    would append to the removed file and lose its line, so it opens the file again."""
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
