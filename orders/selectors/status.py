"""The scheduler's status: whether the workers are alive, the queue, each account's
state and Telegram's delivery, limited to what a user may see."""

from datetime import timedelta

from django.db.models import Count, Min
from django.db.models.functions import Now
from django.utils import timezone

from orders.models import Account, Control, Notification, NotificationChannel, Order, OrderStatus, lease_free, tradable
from orders.selectors.stats import day_summary
from orders.services import access
from orders.services.accounts import insecure_endpoint
from orders.telegram import bot_config


def cluster_status() -> dict:
    """Whether a django-q2 cluster is alive: clusters publish a heartbeat every half
    second that expires after three, so stale clusters drop out by themselves."""
    from django_q.conf import Conf
    from django_q.status import Stat

    try:
        stats = Stat.get_all()
    except Exception:  # the shared cache is unreachable: we cannot claim liveness
        stats = []
    alive = [s for s in stats if s.status in (Conf.IDLE, Conf.WORKING)]
    return {"clusters": len(alive), "workers": sum(len(s.workers) for s in alive)}


def cluster_stalled(*, seconds: float) -> bool:
    """True when orders that could run have waited longer than `seconds` on accounts that
    may trade (not during a pause, of one account or the desk) and nobody holds, and no
    order at all has started in that time: the workers are not taking work (e.g. a
    django-q2 cluster frozen by a killed worker)."""
    cutoff = timezone.now() - timedelta(seconds=seconds)
    idle = Account.objects.filter(tradable()).filter(lease_free())
    waiting = Order.objects.filter(status=OrderStatus.QUEUED, created_at__lt=cutoff, account__in=idle)
    return waiting.exists() and not Order.objects.filter(started_at__gte=cutoff).exists()


def telegram_status() -> dict:
    """Whether Telegram notifications are on and how delivery goes; never the token or
    the chat id."""
    channel = NotificationChannel.objects.filter(pk="telegram").first() or NotificationChannel()
    return {
        "enabled": bot_config() is not None,
        "pending": Notification.objects.filter(sent_at__isnull=True, gave_up_at__isnull=True).count(),
        "last_sent_at": channel.last_sent_at,
        "next_try_at": channel.not_before,
        "last_error": channel.last_error,
        "last_error_at": channel.last_error_at,
    }


TELEGRAM_DETAILS = ("pending", "last_sent_at", "next_try_at", "last_error", "last_error_at")


def _telegram_on() -> dict:
    return {"enabled": bot_config() is not None}


def scheduler_status(*, accounts: set[str] | None = None, telegram_details: bool = True) -> dict:
    """The seed's status (running, queue_size, locked_accounts, total_accounts,
    today_stats) plus cluster, queue and per-account detail. `running` is true only
    while a django-q2 cluster's heartbeat is fresh; `locked_accounts` are the accounts
    whose lease is held right now (by the database clock). `accounts` limits every
    figure to those accounts (a user restricted to some); None means all."""
    today = timezone.localdate()
    cluster = cluster_status()
    all_orders = Order.objects.all() if accounts is None else Order.objects.filter(account_id__in=accounts)
    all_accounts = Account.objects.all() if accounts is None else Account.objects.filter(pk__in=accounts)
    queued = all_orders.filter(status=OrderStatus.QUEUED)
    per_account = dict(queued.values_list("account_id").annotate(n=Count("*")).order_by())
    in_flight = dict(
        all_orders.filter(status__in=OrderStatus.in_flight())
        .values_list("account_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    oldest = queued.aggregate(oldest=Min("created_at"))["oldest"]
    accounts = list(all_accounts.filter(in_config=True).order_by("id"))
    locked = list(
        all_accounts.filter(lease_until__gt=Now()).exclude(lease_owner="").order_by("id").values_list("id", flat=True)
    )
    summary = day_summary(orders=all_orders, day=today)
    control = Control.objects.filter(pk=1).first()
    return {
        "running": cluster["clusters"] > 0,
        "queue_size": sum(per_account.values()),
        "locked_accounts": locked,
        "total_accounts": len(accounts),
        "today_stats": {k: summary[k] for k in ("total", "success", "failed", "success_rate")},
        "clusters_alive": cluster["clusters"],
        "workers_alive": cluster["workers"],
        "in_flight": sum(in_flight.values()),
        "oldest_queued_age_seconds": round((timezone.now() - oldest).total_seconds(), 3) if oldest else None,
        "trading_paused": bool(control and control.trading_paused),
        "trading_pause_reason": control.reason if control and control.trading_paused else "",
        # Delivery errors and timings are for operators; others learn only whether it is on.
        "telegram": telegram_status() if telegram_details else {**dict.fromkeys(TELEGRAM_DETAILS), **_telegram_on()},
        "accounts": [
            _account_status(a, queued=per_account.get(a.id, 0), in_flight=in_flight.get(a.id, 0), locked=a.id in locked)
            for a in accounts
        ],
    }


def _account_status(a: Account, *, queued: int, in_flight: int, locked: bool) -> dict:
    """One account's line of the status."""
    return {
        "id": a.id,
        "name": a.name,
        "mode": a.mode,
        "enabled": a.enabled,
        "paused": a.paused,
        "pause_reason": a.pause_reason,
        "config_error": a.config_error,
        "queue_size": queued,
        "in_flight": in_flight,
        "locked": locked,
        "last_success_at": a.last_success_at,
        "last_error_at": a.last_error_at,
        "last_error": a.last_error,
        "degraded": a.degraded_since is not None,
        "degraded_reason": a.degraded_reason,
        "degraded_since": a.degraded_since,
        "insecure_endpoint": insecure_endpoint(a.hostname, a.base_url),
    }


def status_for(user) -> dict:
    """The scheduler status as this user may see it: their accounts only, and Telegram's
    delivery details (errors, timings) only for operators."""
    return scheduler_status(accounts=access.allowed_account_ids(user), telegram_details=access.user_can_operate(user))
