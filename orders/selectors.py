"""Reads: status, order history and statistics. Every figure is computed by the
database (COUNT/GROUP BY over indexed columns), never by looping over rows in Python."""

from datetime import datetime, time, timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from orders.models import Account, Notification, NotificationChannel, Order, OrderStatus
from orders.telegram import bot_config


def day_bounds(day) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the configured time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)
    return start, end


_COUNTS = {
    "total": Count("id"),
    "success": Count("id", filter=Q(status=OrderStatus.SUCCESS)),
    "failed": Count("id", filter=Q(status=OrderStatus.FAILED)),
}
_EXTRA_COUNTS = {
    "expired": Count("id", filter=Q(status=OrderStatus.EXPIRED)),
    "cancelled": Count("id", filter=Q(status=OrderStatus.CANCELLED)),
    "pending": Count("id", filter=Q(status__in=[OrderStatus.QUEUED, *OrderStatus.in_flight()])),
}


def success_rate(success: int, failed: int) -> float:
    """Share of decided orders (success + failed) that succeeded, in percent, two
    decimals; 0 when none was decided."""
    decided = success + failed
    return round(100.0 * success / decided, 2) if decided else 0


def _summary(row: dict) -> dict:
    return {**row, "success_rate": success_rate(row["success"], row["failed"])}


def day_summary(*, orders: QuerySet, day) -> dict:
    start, end = day_bounds(day)
    return _summary(orders.filter(created_at__gte=start, created_at__lt=end).aggregate(**_COUNTS, **_EXTRA_COUNTS))


def grouped(*, orders: QuerySet, field: str) -> dict[str, dict]:
    rows = orders.values(field).annotate(**_COUNTS).order_by(field)
    return {row.pop(field): row for row in rows}


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
    """True when orders that could run have waited longer than `seconds` on accounts
    nobody holds, and no order at all has started in that time: the workers are not
    taking work (e.g. a django-q2 cluster frozen by a killed worker)."""
    cutoff = timezone.now() - timedelta(seconds=seconds)
    waiting = Order.objects.filter(
        status=OrderStatus.QUEUED,
        created_at__lt=cutoff,
        account__enabled=True,
        account__paused=False,
        account__config_error="",
    ).filter(Q(account__lease_until__isnull=True) | Q(account__lease_until__lt=Now()))
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


def scheduler_status() -> dict:
    today = timezone.localdate()
    cluster = cluster_status()
    queued = Order.objects.filter(status=OrderStatus.QUEUED)
    per_account = dict(queued.values_list("account_id").annotate(n=Count("id")).order_by())
    oldest = queued.aggregate(oldest=Min("created_at"))["oldest"]
    accounts = list(Account.objects.filter(in_config=True).order_by("id"))
    locked = list(
        Account.objects.filter(lease_until__gt=Now()).exclude(lease_owner="").order_by("id").values_list("id", flat=True)
    )
    summary = day_summary(orders=Order.objects.all(), day=today)
    return {
        "running": cluster["clusters"] > 0,
        "queue_size": sum(per_account.values()),
        "locked_accounts": locked,
        "total_accounts": len(accounts),
        "today_stats": {k: summary[k] for k in ("total", "success", "failed", "success_rate")},
        "clusters_alive": cluster["clusters"],
        "workers_alive": cluster["workers"],
        "in_flight": Order.objects.filter(status__in=OrderStatus.in_flight()).count(),
        "oldest_queued_age_seconds": round((timezone.now() - oldest).total_seconds(), 3) if oldest else None,
        "telegram": telegram_status(),
        "accounts": [
            {
                "id": a.id,
                "name": a.name,
                "mode": a.mode,
                "enabled": a.enabled,
                "paused": a.paused,
                "pause_reason": a.pause_reason,
                "config_error": a.config_error,
                "queue_size": per_account.get(a.id, 0),
                "locked": a.id in locked,
                "last_success_at": a.last_success_at,
                "last_error_at": a.last_error_at,
                "last_error": a.last_error,
            }
            for a in accounts
        ],
    }


def statistics() -> dict:
    today = timezone.localdate()
    start, end = day_bounds(today)
    todays = Order.objects.filter(created_at__gte=start, created_at__lt=end)
    return {
        "today": day_summary(orders=Order.objects.all(), day=today),
        "yesterday": day_summary(orders=Order.objects.all(), day=today - timedelta(days=1)),
        "by_account": grouped(orders=todays, field="account_id"),
        "by_strategy": grouped(orders=todays, field="strategy_name"),
        "by_symbol": grouped(orders=todays, field="symbol"),
    }
