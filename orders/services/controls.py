"""Kill switches: pause and resume one account or all trading.

A paused account (or a desk-wide pause) sends nothing: the drainer stops before its next
order, whatever is queued stays queued, and new submits are held as queued or refused
(ORDER_SCHEDULER_PAUSED_SUBMITS=hold|refuse). Resuming wakes the drainers.
"""

from django.db import transaction

from orders.models import Account, tradable
from orders.services import access, transitions
from orders.services.audit import audit_record
from orders.services.drain import wake_account
from orders.services.errors import NotFound


class ControlError(NotFound):
    """No such account: nothing to pause or resume there."""

    def __init__(self, account_id: str):
        message = f"Unknown account '{account_id}'."
        super().__init__(message, {"account": [message]})


def pause(*, account_id: str | None = None, reason: str, user=None, source: str = "") -> None:
    """Pause one account, or all trading when account_id is None. Raises Forbidden when
    the user may not (see access.may_control), ControlError for an unknown account."""
    access.check_control(user, account_id, verb="pause")
    reason = reason.strip() or "paused by an operator"
    who = getattr(user, "username", "") or source or "system"
    actor = _actor(user, source)
    with transaction.atomic():
        if account_id is None:
            transitions.pause_trading(reason=reason, actor=actor)
        elif not Account.objects.filter(pk=account_id).exists():
            raise ControlError(account_id)
        elif not transitions.pause_account(account_id=account_id, reason=f"{reason} ({who})", actor=actor):
            # Already paused: the new reason replaces the old one.
            Account.objects.filter(pk=account_id).update(pause_reason=f"{reason} ({who})")
        audit_record(action="pause", user=user, source=source, target=account_id or "all", changes={"reason": reason})


def resume(*, account_id: str | None = None, user=None, source: str = "") -> list[str]:
    """Resume one account, or all trading; wakes the drainers. Returns the accounts woken
    (those that may trade now). Raises as pause() does."""
    access.check_control(user, account_id, verb="resume")
    actor = _actor(user, source)
    with transaction.atomic():
        if account_id is None:
            transitions.resume_trading(actor=actor)
            woken = list(Account.objects.filter(tradable()).values_list("pk", flat=True))
        else:
            if not Account.objects.filter(pk=account_id).exists():
                raise ControlError(account_id)
            transitions.resume_account(account_id=account_id, actor=actor)
            woken = [account_id]
        audit_record(action="resume", user=user, source=source, target=account_id or "all")
        for pk in woken:
            wake_account(pk)
    return woken


def _actor(user, source: str) -> transitions.Actor:
    # Pausing and resuming is an operator's act (a command runs without a user).
    return transitions.person(user, operator=True)
