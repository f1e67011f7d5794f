"""The Order table is the queue and the truth; Account rows carry the per-account lease.

State changes are never made here: they live in orders.services, each guarded by a
conditional UPDATE on the current status.
"""

from django.conf import settings
from django.db import models
from django.db.models import Exists, Q
from django.db.models.functions import Now
from django.utils import timezone


class AccountMode(models.TextChoices):
    PAPER = "paper", "Paper (simulated, no network)"
    DEMO = "demo", "OKX demo trading"
    LIVE = "live", "OKX live trading"


class MarginMode(models.TextChoices):
    CROSS = "cross", "Cross"
    ISOLATED = "isolated", "Isolated"
    CASH = "cash", "Cash (spot)"


class Account(models.Model):
    """An exchange account, synced from the accounts file. Holds no secret: only the
    names of the environment variables that hold them."""

    id = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=128, blank=True)
    exchange = models.CharField(max_length=32, default="okx")
    mode = models.CharField(max_length=8, choices=AccountMode.choices, default=AccountMode.PAPER)
    api_key_env = models.CharField(max_length=128, blank=True)
    secret_env = models.CharField(max_length=128, blank=True)
    passphrase_env = models.CharField(max_length=128, blank=True)
    hostname = models.CharField(max_length=128, default="www.okx.com")
    base_url = models.CharField(max_length=256, blank=True)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, default=MarginMode.CROSS)
    default_leverage = models.PositiveSmallIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # Anything the account's exchange adapter needs beyond the columns above
    # (paper reference prices and latency, position mode, timeouts).
    options = models.JSONField(default=dict, blank=True)
    # Pre-trade limits checked at submit: max_amount (base currency), max_notional
    # (quote currency), max_leverage.
    limits = models.JSONField(default=dict, blank=True)
    # Why the account cannot trade as configured (e.g. its secrets are missing).
    config_error = models.TextField(blank=True)
    in_config = models.BooleanField(default=True, help_text="Present in the accounts file at the last sync.")

    paused = models.BooleanField(default=False)
    pause_reason = models.TextField(blank=True)

    # The lease: at most one drainer per account, across processes and hosts.
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set while the exchange cannot be reached or is under maintenance: orders are held
    # (not failed) until it answers again or they expire.
    degraded_reason = models.TextField(blank=True)
    degraded_since = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class OrderStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    UNKNOWN = "unknown", "Unknown (reconciling)"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"

    @classmethod
    def final(cls) -> list[str]:
        return [cls.SUCCESS, cls.FAILED, cls.CANCELLED, cls.EXPIRED]

    @classmethod
    def in_flight(cls) -> list[str]:
        return [cls.PROCESSING, cls.UNKNOWN]

    @classmethod
    def retryable(cls) -> list[str]:
        return [cls.FAILED, cls.EXPIRED]


# The exchange's states of a placed order resting on its book: it can be cancelled there.
RESTING_STATES = ("open", "partially_filled")


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"


class AmountUnit(models.TextChoices):
    BASE = "base", "Base currency"
    CONTRACTS = "contracts", "Contracts"


class Order(models.Model):
    request_id = models.CharField(max_length=64, unique=True)
    client_order_id = models.CharField(max_length=32, unique=True)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True, unique=True)
    payload_hash = models.CharField(max_length=64, blank=True)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    symbol = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=6, choices=OrderType.choices)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    amount_unit = models.CharField(max_length=9, choices=AmountUnit.choices, default=AmountUnit.BASE)
    price = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    leverage = models.PositiveSmallIntegerField(null=True, blank=True)
    margin_mode = models.CharField(max_length=8, choices=MarginMode.choices, blank=True)
    reduce_only = models.BooleanField(default=False)
    strategy_name = models.CharField(max_length=64, default="manual")
    priority = models.SmallIntegerField(default=0)

    status = models.CharField(max_length=10, choices=OrderStatus.choices, default=OrderStatus.QUEUED)
    order_id = models.CharField(max_length=64, null=True, blank=True, help_text="The exchange's order id.")
    exchange_state = models.CharField(max_length=24, blank=True)
    filled_amount = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    average_price = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    fee = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    fee_currency = models.CharField(max_length=16, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The last placement request's deadline (OKX's expTime, on OKX's clock), committed
    # before the request leaves: the exchange processes no request of it after this.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Whether any placement request of this order may have reached the exchange.
    sent = models.BooleanField(default=False)
    # A resting order the user asked to cancel on the exchange (done by the drainer).
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    exchange_checked_at = models.DateTimeField(null=True, blank=True)

    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("trade", "Can submit, cancel and retry orders"),
            ("operate", "Can pause and resume trading and sync accounts"),
            ("all_accounts", "Can see and trade every account"),
        ]
        indexes = [
            # the queue: next order of an account
            models.Index(fields=["account", "status", "-priority", "id"], name="order_queue_idx"),
            models.Index(fields=["status", "created_at"], name="order_status_time_idx"),
            models.Index(fields=["account", "created_at"], name="order_account_time_idx"),
            models.Index(fields=["strategy_name", "created_at"], name="order_strategy_time_idx"),
            models.Index(fields=["symbol", "created_at"], name="order_symbol_time_idx"),
            models.Index(fields=["order_id"], name="order_exchange_id_idx"),
            models.Index(fields=["account", "exchange_state"], name="order_exchange_state_idx"),
            # "X and status" order lists, and today's counts per X and status: both
            # read one (X, status) run of the index at a time, already in created_at
            # order, so a rare status is found at once and counts need no sort
            # (orders.selectors). Nothing may follow created_at: a page's order is
            # (created_at, id), and SQLite keeps the id as every index's last column.
            models.Index(fields=["account", "status", "created_at"], name="order_account_status_idx"),
            models.Index(fields=["strategy_name", "status", "created_at"], name="order_strategy_status_idx"),
            models.Index(fields=["symbol", "status", "created_at"], name="order_symbol_status_idx"),
        ]

    def __str__(self) -> str:
        return self.request_id

    @property
    def resting(self) -> bool:
        """Placed and resting on the exchange's book: a cancel goes to the exchange."""
        return self.status == OrderStatus.SUCCESS and self.exchange_state in RESTING_STATES

    def actions(self) -> list[str]:
        """What a person may still do with the order, stated once: the services refuse
        the rest, the API and the dashboard offer these. "cancel": queued, or resting on
        the book; "retry": failed or expired."""
        actions = []
        if self.status == OrderStatus.QUEUED or self.resting:
            actions.append("cancel")
        if self.status in OrderStatus.retryable():
            actions.append("retry")
        return actions


class EventActor(models.TextChoices):
    USER = "user", "User"
    OPERATOR = "operator", "Operator"
    WORKER = "worker", "Worker"
    RECOVERY = "recovery", "Recovery"
    SYSTEM = "system", "System"


class OrderEvent(models.Model):
    """One change of an order (status, exchange state, fills) or of the service (an
    account or all trading paused or resumed, a cluster up or down), written by
    orders.services.transitions in the same transaction as the change itself. Ids only
    grow: the journal, the notifications and the live stream read "events after id N"."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32)
    order = models.ForeignKey("Order", null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    account_id = models.CharField(max_length=64, blank=True)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.CharField(max_length=16, choices=EventActor.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    # Set once the event's journal line is written (only events that owe one).
    journal_pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["account_id", "id"], name="event_account_idx"),
            models.Index(fields=["order", "id"], name="event_order_idx"),
            models.Index(fields=["id"], condition=models.Q(journal_pending=True), name="event_journal_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.from_status}->{self.to_status}"


class Installation(models.Model):
    """This installation's identity (a single row): the salt of every client order id,
    so that a reset database or a second installation on the same API key never reuses
    an id an earlier order had on the exchange."""

    salt = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)


class PaperOrder(models.Model):
    """What the paper exchange "received": the simulated venue's own book, kept in the
    database so that every worker process sees it and a crashed order can be looked up
    by client order id exactly as on OKX. started/finished are wall-clock seconds of
    the simulated exchange call, which lets tests prove that no account ever had two
    orders in flight."""

    account_id = models.CharField(max_length=64, db_index=True)
    # Not unique: like OKX, the paper venue refuses a repeated id only while the
    # earlier order with it is still open.
    client_order_id = models.CharField(max_length=32, db_index=True)
    exchange_order_id = models.CharField(max_length=32)
    symbol = models.CharField(max_length=64)
    side = models.CharField(max_length=4)
    order_type = models.CharField(max_length=6)
    amount = models.DecimalField(max_digits=30, decimal_places=12)
    price = models.DecimalField(max_digits=30, decimal_places=12, null=True)
    state = models.CharField(max_length=16)
    started = models.FloatField()
    finished = models.FloatField(null=True)
    worker_pid = models.IntegerField(default=0)


class Instrument(models.Model):
    """Market data of a venue (exchange site and mode), as last loaded by a worker, so
    that submit can refuse an unknown symbol or an amount below the minimum at once.
    Amounts are in base currency."""

    venue = models.CharField(max_length=200)
    symbol = models.CharField(max_length=64)
    min_amount = models.DecimalField(max_digits=30, decimal_places=12, null=True)
    amount_step = models.DecimalField(max_digits=30, decimal_places=12, null=True)
    contract_size = models.DecimalField(max_digits=30, decimal_places=12, null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["venue", "symbol"], name="instrument_venue_symbol")]


class Control(models.Model):
    """The desk-wide kill switch (a single row): while trading is paused no order of any
    account is sent; submits are held as queued or refused (ORDER_SCHEDULER_PAUSED_SUBMITS)."""

    trading_paused = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_by = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "trading paused" if self.trading_paused else "trading on"


def tradable(prefix: str = "") -> Q:
    """Accounts that may send orders now: enabled, configured, not paused, and all
    trading not paused. The one statement of that rule, as a condition on Account (the
    drainer, recovery, resume, the supervisor's stall check and the start-up message),
    or through a relation to it (`prefix`, e.g. "account__" on orders)."""
    mine = Q(**{f"{prefix}enabled": True, f"{prefix}paused": False, f"{prefix}config_error": ""})
    return mine & ~Exists(Control.objects.filter(trading_paused=True))


def lease_free() -> Q:
    """Rows with a lease (accounts, the notification channel) that nobody holds now, by
    the database clock."""
    return Q(lease_until__isnull=True) | Q(lease_until__lt=Now())


class AuditEvent(models.Model):
    """Who changed what, when, from where. Written by the services, never edited."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, db_index=True)
    source = models.CharField(max_length=64, blank=True, help_text="Client address or command name.")
    target = models.CharField(max_length=128, blank=True, db_index=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target}"


class NotificationEvent(models.TextChoices):
    ORDER_FAILED = "order_failed", "Order failed"
    ORDER_EXPIRED = "order_expired", "Order expired"
    ORDER_STUCK = "order_stuck", "Order stuck (needs an operator)"
    ORDER_SUCCEEDED = "order_succeeded", "Order succeeded"
    ORDER_FILLED = "order_filled", "Order filled on the exchange"
    ORDER_EXCHANGE_CANCELLED = "order_exchange_cancelled", "Order cancelled by the exchange"
    ACCOUNT_PAUSED = "account_paused", "Account paused"
    SCHEDULER_STARTED = "scheduler_started", "Scheduler started"
    SCHEDULER_STOPPED = "scheduler_stopped", "Scheduler stopped"


class Notification(models.Model):
    """One operator notification waiting for, or done with, delivery to Telegram.

    The table is the outbox: recording an event is one INSERT, and a django-q2 task
    delivers pending rows later, so a slow or unreachable Telegram never delays an
    order. Several pending rows go out together as one summary message."""

    event = models.CharField(max_length=24, choices=NotificationEvent.choices)
    text = models.TextField(help_text="The message on its own (Telegram HTML).")
    line = models.TextField(help_text="One line (Telegram HTML) for a summary of several events.")
    group = models.CharField(max_length=200, help_text="Events with the same group are counted together in a summary.")
    silent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    gave_up_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(sent_at__isnull=True, gave_up_at__isnull=True),
                name="notification_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk}"


class NotificationChannel(models.Model):
    """Delivery state of one channel (today only "telegram"): the sender lease that lets
    one sender at a time talk to the Bot API, and the pacing it must respect."""

    id = models.CharField(primary_key=True, max_length=16)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="No send before this (429 or back-off).")
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive failed sends.")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.id


class AccountGrant(models.Model):
    """Limits a user to some accounts: a user with grants sees and trades only those;
    a user without any sees all (as their role allows)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_grants")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grants")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="grant_user_account")]

    def __str__(self) -> str:
        return f"{self.user} -> {self.account_id}"
