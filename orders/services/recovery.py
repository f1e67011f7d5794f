"""The periodic safety net, run by the `serve` supervisor every few seconds and by a
django-q2 schedule every minute: expire overdue orders, wake every tradable account
that has work but no live lease (a lost task, a crashed worker, a Redis broker that
dropped a task), ask for fills still owed, and write journal lines a crash left owed.
"""

from django.db.models.functions import Now

from orders.models import Account, Order, OrderStatus, lease_free, tradable
from orders.services import transitions
from orders.services.drain import wake_account
from orders.services.tracking import schedule_tracking

NEVER_SENT = "Not started before its expiry time; never sent to the exchange."


def expire_overdue(*, account_id: str | None = None) -> int:
    """Queued orders not started before their expiry end `expired`."""
    overdue = Order.objects.filter(status=OrderStatus.QUEUED, expires_at__lt=Now())
    if account_id:
        overdue = overdue.filter(account_id=account_id)
    expired = 0
    for order in overdue.select_related("account"):
        expired += transitions.move(
            order,
            OrderStatus.EXPIRED,
            actor=transitions.RECOVERY,
            only_from=(OrderStatus.QUEUED,),
            reason=NEVER_SENT,
            error_code="expired",
            error_message=NEVER_SENT,
        )
    return expired


def recover() -> list[str]:
    """Returns the accounts woken."""
    expire_overdue()
    transitions.replay_journal()
    pending = (
        Order.objects.filter(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()])
        .values_list("account_id", flat=True)
        .distinct()
    )
    idle = Account.objects.filter(pk__in=list(pending)).filter(tradable()).filter(lease_free())
    woken = list(idle.values_list("pk", flat=True))
    for account_id in woken:
        wake_account(account_id)
    schedule_tracking()
    return woken
