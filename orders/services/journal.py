"""The execution journal: one JSON line per order that reaches a final status, and a
second when its state on the exchange settles (filled, or cancelled after a partial
fill), in `executions_YYYYMMDD.jsonl` (date in the configured time zone), as the seed
report's older system wrote it. Lines are written from order events
(orders.services.transitions), which also replays any line a crash left owed."""

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


def journal_append(*, order: Order, at=None) -> None:
    """Append the order's line to the file of the day `at` (default: when it finished).
    One write() of the whole line under an exclusive lock, so lines from concurrent
    workers never interleave or tear."""
    line = (json.dumps(order_record(order), ensure_ascii=False, sort_keys=False) + "\n").encode()
    path = journal_path(timezone.localdate(at or order.finished_at or timezone.now()))
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


def journal_has_event(*, event_id: int, at) -> bool:
    """Whether the day's file already has the line of this order event (same request
    id, status and exchange state): a replay after a crash must not write it twice."""
    from orders.models import OrderEvent

    event = OrderEvent.objects.select_related("order").get(pk=event_id)
    order = event.order
    path = journal_path(timezone.localdate(at))
    needle = json.dumps(order.request_id, ensure_ascii=False)
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if needle not in line:
                    continue
                record = json.loads(line)
                if (record.get("request_id"), record.get("status"), record.get("exchange_state")) == (
                    order.request_id,
                    order.status,
                    order.exchange_state,
                ):
                    return True
    except FileNotFoundError:
        return False
    return False


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
