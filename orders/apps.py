import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Order scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_login_failed

        user_login_failed.connect(_login_failed, dispatch_uid="orders-audit-login-failed")
        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="orders-ensure-roles")
        if sys.argv[1:2] == ["qcluster"]:
            from orders.exchanges import preload

            preload()


def _ensure_roles(sender, using="default", **kwargs):
    from orders.services.access import ensure_roles

    ensure_roles()


def _login_failed(sender, credentials, request=None, **kwargs):
    """A failed login goes to the audit trail: the username tried and where from, never
    the password (Django has already masked it; we do not even take the masked one)."""
    from orders.services.audit import audit_record, client_address

    audit_record(
        action="login_failed",
        source=client_address(request) if request is not None else "",
        target=str(credentials.get("username", ""))[:128],
    )
