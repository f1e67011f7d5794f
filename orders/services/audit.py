"""The audit trail: every state-changing action, with who, when, from where and what
changed. Services record it; nothing edits or deletes it."""

import json
from collections.abc import Iterator

from django.conf import settings

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
