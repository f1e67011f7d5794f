"""Operator notifications on Telegram, through an outbox that never delays an order.

Recording an event (order_finished, order_stuck, account_paused, scheduler_started,
scheduler_stopped) logs it and, when Telegram is configured and the event is not
`off`, INSERTs one Notification row and enqueues the sender task on commit. Nothing
here talks to Telegram on an order's path: `send_pending` (a django-q2 task) does, and
`wake_if_due` (the supervisor's periodic pass) starts it when a deferred send is due.

Delivery rules, all enforced by `send_pending` while it holds the channel's lease (a
conditional UPDATE on the NotificationChannel row, so two senders never send the same
rows and the pacing below holds across processes and hosts):
- Pending rows go out together: one row as its own message, several as one summary
  (counts per event and cause, a few examples), silent only if every row is silent.
- A burst becomes one message: the sender waits until no new event arrived for
  GATHER_SECONDS, or BURST_WINDOW (at least GATHER_SECONDS) passed since the oldest
  pending one, and sends at most one message per BURST_WINDOW.
- A 429 reply pauses the channel for the `retry_after` the Bot API gave; other failures
  pause it with a doubling back-off and count an attempt on each row, which is given up
  (and logged) after MAX_ATTEMPTS. Delivery is at least once: a send that timed out may
  have arrived and is sent again.
"""

import html
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Max, Min, Value
from django.db.models.functions import Now
from django.utils import timezone

from orders.models import (
    Account,
    Notification,
    NotificationChannel,
    NotificationEvent,
    Order,
    OrderStatus,
    lease_free,
    tradable,
)
from orders.telegram import BotConfig, TelegramError, bot_config, send_message

logger = logging.getLogger("orders.events")

CHANNEL = "telegram"
MAX_ROWS = 1000  # notifications summarised in one message
MAX_CHARS = 3800  # below Telegram's 4096, counted on the HTML source
GROUPS_SHOWN = 8
EXAMPLES_SHOWN = 3
BACKOFF_CAP = 600.0
RETENTION = timedelta(days=14)

ICON = {
    NotificationEvent.ORDER_STUCK: "⚠️",
    NotificationEvent.ORDER_FAILED: "❌",
    NotificationEvent.ACCOUNT_PAUSED: "⏸",
    NotificationEvent.ORDER_EXPIRED: "⌛",
    NotificationEvent.SCHEDULER_STOPPED: "⏹",
    NotificationEvent.SCHEDULER_STARTED: "▶️",
    NotificationEvent.ORDER_EXCHANGE_CANCELLED: "🚫",
    NotificationEvent.ORDER_SUCCEEDED: "✅",
    NotificationEvent.ORDER_FILLED: "💰",
}  # also the order of sections in a summary: what needs a person first
NOUN = {
    NotificationEvent.ORDER_STUCK: ("order needs an operator", "orders need an operator"),
    NotificationEvent.ORDER_FAILED: ("order failed", "orders failed"),
    NotificationEvent.ACCOUNT_PAUSED: ("account paused", "accounts paused"),
    NotificationEvent.ORDER_EXPIRED: ("order expired", "orders expired"),
    NotificationEvent.SCHEDULER_STOPPED: ("scheduler stop", "scheduler stops"),
    NotificationEvent.SCHEDULER_STARTED: ("scheduler start", "scheduler starts"),
    NotificationEvent.ORDER_EXCHANGE_CANCELLED: ("order cancelled by the exchange", "orders cancelled by the exchange"),
    NotificationEvent.ORDER_SUCCEEDED: ("order succeeded", "orders succeeded"),
    NotificationEvent.ORDER_FILLED: ("order filled", "orders filled"),
}
FINISHED_EVENT = {
    OrderStatus.SUCCESS: NotificationEvent.ORDER_SUCCEEDED,
    OrderStatus.FAILED: NotificationEvent.ORDER_FAILED,
    OrderStatus.EXPIRED: NotificationEvent.ORDER_EXPIRED,
}


# --- Events -----------------------------------------------------------------------------


def order_finished(*, order: Order) -> Notification | None:
    """An order reached a final status. Cancelled orders notify nobody: a person did it."""
    level = logging.INFO if order.status == OrderStatus.SUCCESS else logging.WARNING
    logger.log(
        level,
        "order %s %s on %s: %s %s %s%s",
        order.request_id,
        order.status,
        order.account_id,
        order.side,
        order.amount,
        order.symbol,
        f" ({order.error_code} {order.error_message})" if order.error_message else "",
    )
    event = FINISHED_EVENT.get(order.status)
    if event is None:
        return None
    title = {
        NotificationEvent.ORDER_SUCCEEDED: "Order filled",
        NotificationEvent.ORDER_FAILED: "Order failed",
        NotificationEvent.ORDER_EXPIRED: "Order expired",
    }[event]
    lines = [_heading(event, title, order.account_id), _order_line(order)]
    if event == NotificationEvent.ORDER_SUCCEEDED:
        fill = f"Filled {_num(order.filled_amount)}" if order.filled_amount is not None else "Filled"
        if order.average_price is not None:
            fill += f" at {_num(order.average_price)}"
        lines.append(_esc(f"{fill} · exchange id {order.order_id or '-'}"))
    else:
        lines.append(_error(order.error_code, order.error_message))
    lines.append(_esc(f"Strategy {order.strategy_name} · finished {_when(order.finished_at)}"))
    if event == NotificationEvent.ORDER_FAILED:
        group = f"{order.error_code or 'error'} on {order.account_id}"
        summary = f"{_order_brief(order)}: {_esc(_clip(order.error_message, 100))}"
    else:
        group = f"on {order.account_id}"
        summary = _order_brief(order)
    return _record(event=event, text="\n".join(lines), line=summary, group=group)


def order_settled(*, order: Order) -> Notification | None:
    """A placed order's state on the exchange settled: filled, or cancelled by the
    exchange after a partial fill (cancelled with nothing filled fails the order and is
    told as a failure)."""
    cancelled = order.exchange_state == "cancelled"
    event = NotificationEvent.ORDER_EXCHANGE_CANCELLED if cancelled else NotificationEvent.ORDER_FILLED
    logger.info("order %s on %s settled on the exchange: %s", order.request_id, order.account_id, order.exchange_state)
    fill = f"Filled {_num(order.filled_amount)}" if order.filled_amount is not None else "Filled"
    if order.average_price is not None:
        fill += f" at {_num(order.average_price)}"
    if order.fee is not None:
        fill += f" · fee {_num(order.fee)} {order.fee_currency}".rstrip()
    title = "Order cancelled by the exchange" if cancelled else "Order filled"
    lines = [
        _heading(event, title, order.account_id),
        _order_line(order),
        _esc(f"{fill} · exchange id {order.order_id or '-'}"),
        _esc(f"Strategy {order.strategy_name}"),
    ]
    return _record(event=event, text="\n".join(lines), line=_order_brief(order), group=f"on {order.account_id}")


def order_stuck(*, order: Order, reason: str) -> Notification | None:
    """An order's outcome on the exchange could not be established; its account is
    paused until an operator has looked (status `unknown`)."""
    logger.error("order %s on %s needs an operator: %s", order.request_id, order.account_id, reason)
    event = NotificationEvent.ORDER_STUCK
    text = "\n".join(
        [
            _heading(event, "Order needs an operator", order.account_id),
            _order_line(order),
            _esc(_clip(reason, 500)),
            f"Look it up on the exchange by client order id <code>{_esc(order.client_order_id)}</code>.",
        ]
    )
    return _record(event=event, text=text, line=_order_brief(order), group=f"on {order.account_id}")


def account_paused(*, account_id: str, reason: str) -> Notification | None:
    """An account was paused; its queued orders wait until it is resumed."""
    logger.warning("account %s paused: %s", account_id, reason)
    event = NotificationEvent.ACCOUNT_PAUSED
    text = "\n".join(
        [
            _heading(event, "Account paused", account_id),
            _esc(_clip(reason, 500)),
            "Its orders stay queued until the account is resumed.",
        ]
    )
    line = f"{_esc(account_id)}: {_esc(_clip(reason, 100))}"
    return _record(event=event, text=text, line=line, group=account_id)


def scheduler_started() -> Notification | None:
    """The scheduler (django-q2 cluster and supervisor) started on this host. Also logs
    whether Telegram is configured, never showing the token or chat id."""
    bot = bot_config()
    if bot is None:
        logger.info("Telegram notifications disabled: TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are not set")
    else:
        levels = ", ".join(f"{event}={level}" for event, level in settings.TELEGRAM["EVENTS"].items())
        host = bot.api_base_url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
        logger.info("Telegram notifications enabled via %s: %s", host, levels)
    event = NotificationEvent.SCHEDULER_STARTED
    accounts = Account.objects.filter(in_config=True)
    ready = accounts.filter(tradable()).count()
    lines = [
        _heading(event, "Scheduler started", socket.gethostname()),
        _esc(f"{ready} of {accounts.count()} accounts ready · {_queue_counts()}"),
    ]
    for account in accounts.exclude(config_error="")[:GROUPS_SHOWN]:
        lines.append(_esc(f"{account.id}: {_clip(account.config_error, 150)}"))
    for account in accounts.filter(paused=True)[:GROUPS_SHOWN]:
        lines.append(_esc(f"{account.id} is paused: {_clip(account.pause_reason, 150)}"))
    return _record(event=event, text="\n".join(lines), line=_esc(socket.gethostname()), group=socket.gethostname())


def scheduler_stopped() -> Notification | None:
    """The scheduler stopped on this host. No worker is left to deliver it, so this
    sends what is pending right away (bounded by TELEGRAM_TIMEOUT); what cannot be
    sent now stays pending for the next start."""
    event = NotificationEvent.SCHEDULER_STOPPED
    text = "\n".join(
        [
            _heading(event, "Scheduler stopped", socket.gethostname()),
            _esc(f"No orders execute until it is started again · {_queue_counts()}"),
        ]
    )
    row = _record(event=event, text=text, line=_esc(socket.gethostname()), group=socket.gethostname(), enqueue=False)
    if bot_config() is not None:
        try:
            send_pending(flush=True)
        except DatabaseError:
            logger.exception("could not send the pending notifications at stop")
    return row


def _record(*, event: str, text: str, line: str, group: str, enqueue: bool = True) -> Notification | None:
    """One INSERT and an enqueue on commit; never raises, so it cannot fail an order."""
    level = settings.TELEGRAM["EVENTS"].get(event, "off")
    if level == "off" or bot_config() is None:
        return None
    try:
        with transaction.atomic():  # a savepoint inside a caller's transaction
            row = Notification.objects.create(
                event=event, text=text, line=line, group=group[:200], silent=level == "silent"
            )
    except DatabaseError:
        logger.exception("could not record a %s notification", event)
        return None
    if enqueue:
        transaction.on_commit(_enqueue_sender, robust=True)
    return row


def _enqueue_sender() -> None:
    from django_q.tasks import async_task

    async_task("orders.tasks.send_notifications", task_name="telegram", group="notify")


# --- Delivery ---------------------------------------------------------------------------


def _pending():
    return Notification.objects.filter(sent_at__isnull=True, gave_up_at__isnull=True)


def _lease_seconds() -> float:
    return 30 + 3 * settings.TELEGRAM["TIMEOUT"]


def _acquire(owner: str) -> bool:
    NotificationChannel.objects.get_or_create(pk=CHANNEL)
    until = ExpressionWrapper(Now() + Value(timedelta(seconds=_lease_seconds())), output_field=DateTimeField())
    return (
        NotificationChannel.objects.filter(pk=CHANNEL).filter(lease_free()).update(lease_owner=owner, lease_until=until)
        == 1
    )


def _release(owner: str) -> None:
    NotificationChannel.objects.filter(pk=CHANNEL, lease_owner=owner).update(lease_owner="", lease_until=None)


def ready_at(*, channel: NotificationChannel, oldest: datetime, newest: datetime, flush: bool = False) -> datetime:
    """When the pending notifications created between `oldest` and `newest` may be sent."""
    gather = timedelta(seconds=settings.TELEGRAM["GATHER_SECONDS"])
    window = timedelta(seconds=settings.TELEGRAM["BURST_WINDOW"])
    times = [oldest, channel.not_before]
    if not flush:
        times.append(min(newest + gather, oldest + max(gather, window)))
        if channel.last_sent_at:
            times.append(channel.last_sent_at + window)
    return max(t for t in times if t is not None)


def send_pending(*, flush: bool = False) -> int:
    """The sender: deliver the pending notifications that are ready, as one message.

    Returns how many notifications it delivered. Returns 0 at once when Telegram is
    disabled, another sender holds the lease, or nothing is ready yet. `flush` skips
    the burst rules (used at shutdown); a 429 or back-off pause is always honoured.
    """
    bot = bot_config()
    if bot is None:
        return 0
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _acquire(owner):
        return 0
    try:
        return _send_leased(bot=bot, flush=flush)
    finally:
        _release(owner)


def _send_leased(*, bot: BotConfig, flush: bool) -> int:
    channel = NotificationChannel.objects.get(pk=CHANNEL)
    rows = list(_pending().order_by("id")[:MAX_ROWS])
    if not rows:
        return 0
    now = timezone.now()
    created = [row.created_at for row in rows]
    if ready_at(channel=channel, oldest=min(created), newest=max(created), flush=flush) > now:
        return 0
    text = rows[0].text if len(rows) == 1 else summary_text(rows, now=now)
    ids = [row.pk for row in rows]
    try:
        send_message(bot=bot, text=text, silent=all(row.silent for row in rows))
    except TelegramError as exc:
        _send_failed(channel=channel, ids=ids, error=exc)
        return 0
    sent_at = timezone.now()
    Notification.objects.filter(pk__in=ids, sent_at__isnull=True).update(sent_at=sent_at)
    NotificationChannel.objects.filter(pk=CHANNEL).update(failures=0, not_before=None, last_sent_at=sent_at)
    Notification.objects.filter(created_at__lt=sent_at - RETENTION).delete()
    return len(rows)


def _send_failed(*, channel: NotificationChannel, ids: list[int], error: TelegramError) -> None:
    now = timezone.now()
    conf = settings.TELEGRAM
    if error.retry_after is not None:
        # Telegram's own pacing: not a failure of these rows, just wait as told.
        failures, pause = channel.failures, error.retry_after
        Notification.objects.filter(pk__in=ids).update(last_error=error.message)
    else:
        failures = channel.failures + 1
        pause = min(BACKOFF_CAP, conf["RETRY_SECONDS"] * 2 ** (failures - 1))
        Notification.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1, last_error=error.message)
        gave_up = Notification.objects.filter(
            pk__in=ids, attempts__gte=conf["MAX_ATTEMPTS"], gave_up_at__isnull=True
        ).update(gave_up_at=now)
        if gave_up:
            logger.error(
                "gave up on %d Telegram notifications after %d attempts: %s",
                gave_up,
                conf["MAX_ATTEMPTS"],
                error.message,
            )
    NotificationChannel.objects.filter(pk=CHANNEL).update(
        failures=failures, not_before=now + timedelta(seconds=pause), last_error=error.message, last_error_at=now
    )
    logger.warning("Telegram send of %d notifications failed: %s; next try in %.1fs", len(ids), error.message, pause)


def wake_if_due() -> bool:
    """The periodic pass (the supervisor's loop, the recovery schedule): enqueue the
    sender when a deferred message is due and no sender is at work."""
    if bot_config() is None:
        return False
    span = _pending().aggregate(oldest=Min("created_at"), newest=Max("created_at"))
    if span["oldest"] is None:
        return False
    channel, _ = NotificationChannel.objects.get_or_create(pk=CHANNEL)
    now = timezone.now()
    if channel.lease_until and channel.lease_until > now:
        return False
    if ready_at(channel=channel, oldest=span["oldest"], newest=span["newest"]) > now:
        return False
    _enqueue_sender()
    return True


# --- Formatting (Telegram HTML: only & < > need escaping outside tags) -------------------


def summary_text(rows: list[Notification], *, now: datetime) -> str:
    """Several notifications as one message: per event, how many and why, a few examples."""
    blocks = [f"🔔 <b>{len(rows)} notifications in the last {_span(now - min(r.created_at for r in rows))}</b>"]
    for event in ICON:
        of_event = [row for row in rows if row.event == event]
        if not of_event:
            continue
        counts: dict[str, int] = {}
        for row in of_event:
            counts[row.group] = counts.get(row.group, 0) + 1
        singular, plural = NOUN[event]
        block = [f"{ICON[event]} <b>{len(of_event)} {singular if len(of_event) == 1 else plural}</b>"]
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        block += [f"• {n} × {_esc(group)}" for group, n in ranked[:GROUPS_SHOWN]]
        if len(ranked) > GROUPS_SHOWN:
            block.append(f"• … and {len(ranked) - GROUPS_SHOWN} more")
        block += [f"<i>e.g.</i> {row.line}" for row in of_event[:EXAMPLES_SHOWN]]
        blocks.append("\n".join(block))
    text = ""
    for block in blocks:
        candidate = f"{text}\n\n{block}" if text else block
        if len(candidate) > MAX_CHARS:
            return f"{text}\n\n…"
        text = candidate
    return text


def _heading(event: str, title: str, subject: str) -> str:
    return f"{ICON[event]} <b>{_esc(title)}</b> · {_esc(subject)}"


def _order_line(order: Order) -> str:
    words = f"{order.side} {_num(order.amount)} {order.symbol} {order.order_type}"
    if order.price is not None:
        words += f" @ {_num(order.price)}"
    if order.leverage:
        words += f" {order.leverage}x"
    return f"<code>{_esc(order.request_id)}</code> {_esc(words)}"


def _order_brief(order: Order) -> str:
    words = f"{order.side} {_num(order.amount)} {order.symbol} on {order.account_id}"
    return f"<code>{_esc(order.request_id)}</code> {_esc(words)}"


def _error(code: str, message: str) -> str:
    return f"Error <code>{_esc(code or 'unknown')}</code>: {_esc(_clip(message, 500))}"


def _queue_counts() -> str:
    queued = Order.objects.filter(status=OrderStatus.QUEUED).count()
    in_flight = Order.objects.filter(status__in=OrderStatus.in_flight()).count()
    return f"{queued} queued, {in_flight} in flight"


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


def _clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return format(Decimal(value).normalize(), "f")


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment or timezone.now()).strftime("%Y-%m-%d %H:%M:%S %Z")


def _span(delta: timedelta) -> str:
    seconds = max(1, round(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"
