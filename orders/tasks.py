"""django-q2 task entry points: thin wrappers that take ids and call services."""

from django.conf import settings

from orders.services import archive, drain, notifications, recovery, tracking


def drain_account(account_id: str) -> int:
    return drain.drain_account(account_id=account_id)


def recover() -> list[str]:
    woken = recovery.recover()
    notifications.wake_if_due()
    return woken


def track_open_orders(account_id: str) -> int:
    return tracking.track_open_orders(account_id=account_id)


def send_notifications() -> int:
    return notifications.send_pending()


def archive_logs() -> list[str]:
    """Daily: gzip journal files older than ORDER_SCHEDULER_ARCHIVE_DAYS."""
    report = archive.archive_journals(older_than_days=settings.ORDER_SCHEDULER["ARCHIVE_DAYS"])
    if report.problems:
        # A failed task is what django-q2 keeps and the admin shows (successes are not saved).
        raise RuntimeError("; ".join(f"{name}: {problem}" for name, problem in report.problems.items()))
    return [name for name, _ in report.archived]
