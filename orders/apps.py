import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Order scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        user_login_failed.connect(_login_failed, dispatch_uid="orders-audit-login-failed")
        user_locked_out.connect(_locked_out, dispatch_uid="orders-audit-locked-out")
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="orders-ensure-roles")
        if sys.argv[1:2] == ["qcluster"]:
            _preload()


def _preload() -> None:
    """Load the exchange client library and the task code now, in a django-q2 cluster's
    main process, before it forks its workers: every worker then shares these modules
    instead of importing them itself (a large share of a worker's start-up CPU and
    memory), so a worker's first order of an account is not delayed by it."""
    import gc

    import orders.exchanges.okx  # noqa: F401  (imports ccxt)
    import orders.tasks  # noqa: F401

    # Objects that exist now are never collected: the collector would otherwise touch
    # them in every worker and turn the shared pages into private copies.
    gc.freeze()


def _ensure_roles(sender, using="default", **kwargs):
    from orders.services.access import ensure_roles

    ensure_roles()


def _login_failed(sender, credentials, request=None, **kwargs):
    """A failed login goes to the audit trail once per address and username while the
    lockout window lasts (a guessing run is one event, then one login_locked_out), with
    the username tried and where from, never the password (Django has already masked it;
    we do not even take the masked one). A login refused because it is locked out
    checked no password and records nothing."""
    from django.conf import settings
    from django.core.cache import caches

    from orders.services.audit import audit_record, client_address

    if getattr(request, "axes_locked_out", False):
        return
    source = client_address(request) if request is not None else ""
    username = str(credentials.get("username", ""))[:128]
    key = f"orders:login-failed:{source}:{username}"
    if not caches["throttle"].add(key, 1, timeout=settings.LOGIN_LOCKOUT_MINUTES * 60):
        return
    audit_record(action="login_failed", source=source, target=username)


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    """One audit event for a whole guessing run: the address or username is locked out
    (axes signals every refused attempt)."""
    from django.conf import settings
    from django.core.cache import caches

    from orders.services.audit import audit_record

    # One event per run: not again while the address or the username has one this window
    # (many usernames from one address, or one username from many addresses).
    cache, timeout = caches["throttle"], settings.LOGIN_LOCKOUT_MINUTES * 60
    new_address = cache.add(f"orders:login-locked:address:{ip_address}", 1, timeout=timeout)
    new_username = cache.add(f"orders:login-locked:username:{username}", 1, timeout=timeout)
    if not (new_address and new_username):
        return
    audit_record(
        action="login_locked_out",
        source=ip_address or "",
        target=str(username or "")[:128],
        changes={"failures": settings.LOGIN_FAILURE_LIMIT, "locked_minutes": settings.LOGIN_LOCKOUT_MINUTES},
    )
