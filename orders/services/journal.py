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
from orders.representation import order_record

logger = logging.getLogger(__name__)


def journal_path(day) -> Path:
    return Path(settings.ORDER_SCHEDULER["LOG_DIR"]) / f"executions_{day:%Y%m%d}.jsonl"


def journal_append(*, order: Order, at=None) -> None:
    """Append the order's line to the file of the day `at` (default: when it finished)."""
    journal_append_many(orders=[order], at=at or order.finished_at)


def journal_append_many(*, orders: list[Order], at=None) -> None:
    """Append the orders' lines to the file of the day `at`. One write() of the whole
    lines under an exclusive lock, so lines from concurrent workers never interleave or
    tear."""
    data = "".join(json.dumps(order_record(order), ensure_ascii=False) + "\n" for order in orders).encode()
    path = journal_path(timezone.localdate(at or timezone.now()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        # The database stays the truth; a full disk must not stop trading.
        logger.error("journal write failed for %s: %s", ", ".join(o.request_id for o in orders[:5]), exc)


def journal_lines_present(events) -> set[int]:
    """The ids of those order events whose line is already in its day's file (same
    request id, status and exchange state as the order now): a replay after a crash
    must not write them twice. Each day's file is read once."""
    by_day: dict = {}
    for event in events:
        by_day.setdefault(timezone.localdate(event.at), []).append(event)
    present = set()
    for day, day_events in by_day.items():
        wanted = {(e.order.request_id, e.order.status, e.order.exchange_state): e.pk for e in day_events}
        ids = {e.order.request_id for e in day_events}
        try:
            with open(journal_path(day), encoding="utf-8") as lines:
                for line in lines:
                    record = json.loads(line)
                    if record.get("request_id") in ids:
                        key = (record["request_id"], record.get("status"), record.get("exchange_state"))
                        if key in wanted:
                            present.add(wanted[key])
        except FileNotFoundError:
            continue
    return present


def _open_locked(path: Path) -> int:
    """Open the day's file for appending and take its exclusive lock. archive_logs
    (orders.services.archive) removes a day's file under this same lock once it is
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
