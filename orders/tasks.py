"""django-q2 task entry points: thin wrappers that take ids and call services."""

from orders.services import execution, notifications


def drain_account(account_id: str) -> int:
    return execution.drain_account(account_id=account_id)


def recover() -> list[str]:
    woken = execution.recover()
    notifications.wake_if_due()
    return woken


def send_notifications() -> int:
    return notifications.send_pending()
