"""The audit trail: every state-changing action, with who, when, from where and what
changed. Services record it; nothing edits or deletes it."""

import json
from collections.abc import Iterator

from django.conf import settings
from django.core.cache import caches

from orders.models import AuditEvent

# Keys whose values must never be recorded, whatever a caller passes in `changes`.
_SECRET_WORDS = ("secret", "password", "passphrase", "token", "api_key", "apikey")


def _clean(changes: dict) -> dict:
    cleaned = {}
    for key, value in changes.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            cleaned[key] = "***"
        elif isinstance(value, dict):
            cleaned[key] = _clean(value)
        else:
            cleaned[key] = value if isinstance(value, (str, int, float, bool, list, type(None))) else str(value)
    return cleaned


def audit_record(
    *, action: str, user=None, source: str = "", target: str = "", changes: dict | None = None
) -> AuditEvent:
    """Record one action. `user` may be None (the system) or an anonymous user."""
    real_user = user if getattr(user, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        action=action,
        user=real_user,
        username=getattr(real_user, "username", "") or (getattr(user, "username", "") if user else ""),
        source=(source or "")[:64],
        target=(target or "")[:128],
        changes=_clean(changes or {}),
    )


def client_address(request) -> str:
    """The client's address. REMOTE_ADDR, unless TRUSTED_PROXY_COUNT says N reverse
    proxies stand in front: each appends the address it saw to X-Forwarded-For, so the
    client is the Nth entry from the right (what a client writes there itself sits
    further left and is never believed). Too few entries: REMOTE_ADDR."""
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies][:64]
    return remote


def login_failed_record(*, source: str, username: str) -> None:
    """A failed login goes to the audit trail once per address and username while the
    lockout window lasts (a guessing run is one event, then one login_locked_out), with
    the username tried and where from, never the password (Django has already masked it;
    we do not even take the masked one)."""
    username = username[:128]
    if _first_in_window(f"orders:login-failed:{source}:{username}"):
        audit_record(action="login_failed", source=source, target=username)


def login_locked_out_record(*, ip_address: str, username: str) -> None:
    """One audit event for a whole guessing run: the address or username is locked out
    (axes signals every refused attempt). Not again while the address or the username
    has one this window (many usernames from one address, or one username from many)."""
    new_address = _first_in_window(f"orders:login-locked:address:{ip_address}")
    new_username = _first_in_window(f"orders:login-locked:username:{username}")
    if new_address and new_username:
        audit_record(
            action="login_locked_out",
            source=ip_address,
            target=username[:128],
            changes={"failures": settings.LOGIN_FAILURE_LIMIT, "locked_minutes": settings.LOGIN_LOCKOUT_MINUTES},
        )


def _first_in_window(key: str) -> bool:
    """True the first time `key` is seen within the login lockout window."""
    return caches["throttle"].add(key, 1, timeout=settings.LOGIN_LOCKOUT_MINUTES * 60)


def audit_lines(*, events) -> Iterator[str]:
    """JSONL of audit events, in constant memory."""
    for event in events.order_by("at", "id").iterator(chunk_size=2000):
        yield (
            json.dumps(
                {
                    "at": event.at.isoformat(),
                    "user": event.username,
                    "action": event.action,
                    "source": event.source,
                    "target": event.target,
                    "changes": event.changes,
                },
                ensure_ascii=False,
            )
            + "\n"
        )
