"""django-q2 task entry points: thin wrappers that take ids and call services."""

from orders.services import execution


def drain_account(account_id: str) -> int:
    return execution.drain_account(account_id=account_id)


def recover() -> list[str]:
    return execution.recover()


def track_open_orders(account_id: str) -> int:
    return execution.track_open_orders(account_id=account_id)
