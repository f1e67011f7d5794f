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
    """Load the exchange client library, the task code and Django's SQL compiler now, in
    a django-q2 cluster's main process, before it forks its workers: every worker then
    shares these modules instead of importing them itself (a large share of a worker's
    start-up CPU and memory), so a worker's first order of an account is not delayed by
    it."""
    import gc
    from importlib import import_module

    from django.conf import settings
    from django.db.utils import load_backend

    import orders.exchanges.okx  # noqa: F401  (imports ccxt)
    import orders.tasks  # noqa: F401

    # Django imports it at a process's first query: in each worker, on its first order.
    backend = load_backend(settings.DATABASES["default"]["ENGINE"])
    import_module(backend.DatabaseWrapper.ops_class.compiler_module)

    # Objects that exist now are never collected: the collector would otherwise touch
    # them in every worker and turn the shared pages into private copies.
    gc.freeze()


def _ensure_roles(sender, using="default", **kwargs):
    from orders.services.access import ensure_roles

    ensure_roles()


def _login_failed(sender, credentials, request=None, **kwargs):
    from orders.services.audit import client_address, login_failed_record

    if getattr(request, "axes_locked_out", False):
        return  # refused because locked out: no password was checked
    source = client_address(request) if request is not None else ""
    login_failed_record(source=source, username=str(credentials.get("username", "")))


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    from orders.services.audit import login_locked_out_record

    login_locked_out_record(ip_address=ip_address or "", username=str(username or ""))
