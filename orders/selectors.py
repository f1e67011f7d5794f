"""Reads: status, order history and statistics.

Every figure is computed by the database, over an index chosen for its query (see the
Order model's Meta.indexes); Python only folds a bounded number of aggregate rows (one
per status, per group, per hour) into the response, never the orders themselves.
Storage is UTC; days and hours follow the configured time zone (TIME_ZONE).

Two query shapes recur because they let SQLite answer from an index alone, however
long the history, without sorting:

- counts: `X IN (every value) AND status IN (every status) AND created_at in [start, end)`
  grouped by X and status, over an (X, status, created_at) index: one index seek per
  (X, status) pair, and the rows come out already grouped;
- pages: `ORDER BY created_at DESC, id DESC LIMIT n` over an index that ends in
  created_at (created_at alone, or a filter column then created_at), with a keyset
  cursor, so a page deep in history costs what the first one does.
"""

import base64
import binascii
import heapq
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, FloatField, Func, Min, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from orders.models import Account, Control, Notification, NotificationChannel, Order, OrderStatus
from orders.services import access
from orders.services.accounts import insecure_endpoint
from orders.telegram import bot_config

ALL_STATUSES = tuple(OrderStatus.values)
PENDING_STATUSES = (OrderStatus.QUEUED, *OrderStatus.in_flight())
SEARCH_FIELDS = ("request_id", "order_id", "client_order_id")
# A search term must narrow the history down to at most this many orders per id field:
# the matches are then read through that field's index and sorted by time, a bounded
# cost. A broader prefix is refused rather than allowed to sort a large part of the
# history.
SEARCH_MAX_MATCHES = 5000


class QueryError(ValueError):
    """A query the selectors refuse; `field` names the query parameter at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# --- Time ---------------------------------------------------------------------------


def day_bounds(day) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the configured time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)
    return start, end


# A bound past the calendar's edge (year 1 or 9999 with an offset) is held at the edge,
# so a time window still means what it says.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def parse_time_bound(value: str, *, name: str) -> datetime:
    """An ISO 8601 date or date-time (a query parameter or a command's option `name`) as
    an aware datetime. A date alone means that day's midnight, and a date-time without an
    offset a wall-clock time, both in the configured time zone. Raises QueryError(name)
    when `value` is neither. The API, the dashboard and the commands all read times here."""
    text = str(value).strip().upper()  # RFC 3339 allows a lowercase t and z
    # An unencoded "+" in a query string arrives as a space: "...T15:30:00 08:00".
    text = re.sub(r"(T\S+) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        day = moment = None
    if day is None and moment is None:
        raise QueryError(
            name, f"{name} must be an ISO 8601 date or datetime (2026-02-21 or 2026-02-21T15:30), got {value!r}"
        )
    try:
        if day is not None:
            return day_bounds(day)[0]
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_current_timezone())
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return EARLIEST if (day or moment).year < 5000 else LATEST


def hour_bounds(day) -> list[datetime]:
    """The 25 boundaries of a day's 24 local wall-clock hours, in UTC. On the day a
    daylight-saving change happens one hour is empty (skipped) or two hours long
    (repeated), so the 24 buckets always add up to the day."""
    tz = timezone.get_current_timezone()
    bounds = [datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC) for hour in range(24)]
    return [*bounds, day_bounds(day)[1].astimezone(UTC)]


# --- Counting -------------------------------------------------------------------------


def success_rate(success: int, failed: int) -> float:
    """Share of decided orders (success + failed) that succeeded, in percent, two
    decimals; 0 when none was decided. Orders still pending, cancelled or expired never
    reached a verdict at the exchange, so they count neither way."""
    decided = success + failed
    return round(100.0 * success / decided, 2) if decided else 0


def summarize(counts: dict[str, int]) -> dict:
    """{total, success, failed, success_rate, cancelled, expired, pending} from counts per status."""
    success = counts.get(OrderStatus.SUCCESS, 0)
    failed = counts.get(OrderStatus.FAILED, 0)
    return {
        "total": sum(counts.values()),
        "success": success,
        "failed": failed,
        "success_rate": success_rate(success, failed),
        "cancelled": counts.get(OrderStatus.CANCELLED, 0),
        "expired": counts.get(OrderStatus.EXPIRED, 0),
        "pending": sum(counts.get(status, 0) for status in PENDING_STATUSES),
    }


def status_counts(*, orders: QuerySet, start: datetime, end: datetime) -> dict[str, int]:
    """Orders created in [start, end) per status. `status IN (every status)` filters
    nothing; it lets the database walk the (status, created_at) index one status at a
    time instead of reading the table."""
    rows = (
        orders.filter(status__in=ALL_STATUSES, created_at__gte=start, created_at__lt=end)
        .values_list("status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return dict(rows)


def day_summary(*, orders: QuerySet, day) -> dict:
    start, end = day_bounds(day)
    return summarize(status_counts(orders=orders, start=start, end=end))


def distinct_values(field: str) -> list[str]:
    """Every distinct value of an indexed Order column, found by skipping through its
    index (one seek per value, however many orders there are) instead of scanning it."""
    qn = connection.ops.quote_name
    table, column = qn(Order._meta.db_table), qn(Order._meta.get_field(field).column)
    sql = (
        f"WITH RECURSIVE v(x) AS (SELECT MIN({column}) FROM {table} "
        f"UNION ALL SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL) "
        "SELECT x FROM v WHERE x IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def _group_summaries(counts: dict[str, dict[str, int]]) -> dict[str, dict]:
    return {
        key: {name: summary[name] for name in ("total", "success", "failed", "success_rate")}
        for key, summary in sorted((key, summarize(per_status)) for key, per_status in counts.items())
    }


def grouped(*, orders: QuerySet, field: str, keys: list[str]) -> dict[str, dict]:
    """{value of `field`: {total, success, failed, success_rate}} over `orders`.

    `keys` lists every value the field can take (see distinct_values), so that the
    database reads each (value, status) run of the (field, status, created_at) index in
    turn and hands the counts back already grouped, instead of sorting the rows."""
    if not keys:
        return {}
    orders = orders.filter(**{f"{field}__in": keys}, status__in=ALL_STATUSES)
    rows = orders.values_list(field, "status").annotate(n=Count("*")).order_by()
    counts: dict[str, dict[str, int]] = {}
    for key, status, n in rows:
        counts.setdefault(key, {})[status] = n
    return _group_summaries(counts)


GROUPS = {"by_account": "account_id", "by_strategy": "strategy_name", "by_symbol": "symbol"}


def grouped_together(*, orders: QuerySet, fixed: dict[str, str]) -> dict[str, dict[str, dict]]:
    """by_account, by_strategy and by_symbol from one grouped pass over `orders`, whose
    columns in `fixed` (column -> value) are known to hold a single value. For a
    filtered few (one account's or one strategy's day) one sort of the matching rows
    costs less than three index walks that would each check the filter row by row."""
    varying = [column for column in GROUPS.values() if column not in fixed]
    rows = orders.values_list(*varying, "status").annotate(n=Count("*")).order_by()
    counts: dict[str, dict[str, dict[str, int]]] = {name: {} for name in GROUPS}
    for *values, status, n in rows:
        keys = {**fixed, **dict(zip(varying, values))}
        for name, column in GROUPS.items():
            per_status = counts[name].setdefault(keys[column], {})
            per_status[status] = per_status.get(status, 0) + n
    return {name: _group_summaries(per_key) for name, per_key in counts.items()}


def hourly_counts(*, bounds: list[datetime], filters: dict[str, str] | None = None) -> list[dict[str, int]]:
    """Counts per status of the orders created in each bucket [bounds[i], bounds[i + 1])
    that match `filters` (model field -> exact value), in one statement: a UNION ALL of
    one range count per bucket over the (status, created_at) index (or (X, status,
    created_at) when filtered by X), so no row is ever sorted. Written as SQL because
    building 48 querysets takes longer than running them."""
    qn = connection.ops.quote_name
    table = qn(Order._meta.db_table)
    status, created_at = qn("status"), qn("created_at")
    where = [f"{status} IN ({', '.join(['%s'] * len(ALL_STATUSES))})", f"{created_at} >= %s", f"{created_at} < %s"]
    values = []
    for name, value in (filters or {}).items():
        if name.endswith("__in"):
            column = qn(Order._meta.get_field(name.removesuffix("__in")).column)
            where.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            values += list(value)
        else:
            where.append(f"{qn(Order._meta.get_field(name).column)} = %s")
            values.append(value)
    adapt = connection.ops.adapt_datetimefield_value
    parts, params = [], []
    for index, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        parts.append(f"SELECT {index}, {status}, COUNT(*) FROM {table} WHERE {' AND '.join(where)} GROUP BY {status}")
        params += [*ALL_STATUSES, adapt(lo), adapt(hi), *values]
    buckets: list[dict[str, int]] = [{} for _ in parts]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for index, order_status, n in cursor.fetchall():
            buckets[index][order_status] = n
    return buckets


class Millis(Func):
    """`end - start` in milliseconds as a float, computed by the database (Django's own
    DateTime subtraction runs a Python function per row on SQLite)."""

    output_field = FloatField()

    def __init__(self, end: str, start: str):
        super().__init__(end, start)

    def as_sql(self, compiler, connection, **extra_context):
        end, end_params = compiler.compile(self.source_expressions[0])
        start, start_params = compiler.compile(self.source_expressions[1])
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000 AS double precision)", [*end_params, *start_params]

    def as_sqlite(self, compiler, connection, **extra_context):
        end, end_params = compiler.compile(self.source_expressions[0])
        start, start_params = compiler.compile(self.source_expressions[1])
        return f"((julianday({end}) - julianday({start})) * 86400000.0)", [*end_params, *start_params]


def durations(*, orders: QuerySet, start: datetime, end: datetime, sample: int) -> dict:
    """Queue wait (created -> started) and execution (started -> finished) in ms over
    the latest `sample` orders created in [start, end) that have started: count, then
    p50, p95 (nearest rank: the value at rank ceil(p/100 * count)) and max.

    One statement: the database takes the sample through the created_at index, works
    out both durations per order, and picks each percentile with ORDER BY + OFFSET over
    that bounded set. An exact percentile over a whole busy day would sort every order
    of it, a cost that grows with the day's volume; the sample bounds that."""
    recent = (
        orders.filter(created_at__gte=start, created_at__lt=end, started_at__isnull=False)
        .order_by("-created_at", "-id")
        .annotate(wait=Millis("started_at", "created_at"), run=Millis("finished_at", "started_at"))
        .values("wait", "run")[:sample]
    )
    sample_sql, params = recent.query.sql_with_params()

    def rank(column: str, percent: int) -> str:
        offset = f"CASE WHEN COUNT({column}) = 0 THEN 0 ELSE (COUNT({column}) * {percent} + 99) / 100 - 1 END"
        return (
            f"(SELECT {column} FROM s WHERE {column} IS NOT NULL ORDER BY {column} "
            f"LIMIT 1 OFFSET (SELECT {offset} FROM s))"
        )

    figures = []
    for column in ("wait", "run"):
        figures += [
            f"(SELECT COUNT({column}) FROM s)",
            rank(column, 50),
            rank(column, 95),
            f"(SELECT MAX({column}) FROM s)",
        ]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH s AS ({sample_sql}) SELECT {', '.join(figures)}", params)
        row = cursor.fetchone()

    def block(count, *figures) -> dict:
        # Whole milliseconds: SQLite's date functions keep no finer time than that.
        p50, p95, peak = (None if value is None else round(value) for value in figures)
        return {"count": count, "p50": p50, "p95": p95, "max": peak}

    return {"sample_limit": sample, "queue_wait_ms": block(*row[:4]), "execution_ms": block(*row[4:])}


# --- Status ---------------------------------------------------------------------------


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


# --- Statistics ---------------------------------------------------------------------


def status_for(user) -> dict:
    """The scheduler status as this user may see it: their accounts only, and Telegram's
    delivery details (errors, timings) only for operators."""
    return scheduler_status(accounts=access.allowed_account_ids(user), telegram_details=access.user_can_operate(user))


def statistics(*, account: str | None = None, strategy: str | None = None, accounts: set[str] | None = None) -> dict:
    """The seed's today, yesterday, by_account, by_strategy and by_symbol (the by_*
    groups cover today), plus today's queue wait and execution durations and 24 hourly
    buckets for today and yesterday. `account` and `strategy` narrow every figure;
    `accounts` limits them to those accounts (a user restricted to some)."""
    if accounts is not None and account is None and len(accounts) == 1:
        account = next(iter(accounts))
    filters = _stats_filters(account=account, strategy=strategy, accounts=accounts)
    orders = Order.objects.filter(**filters)
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    bounds = hour_bounds(yesterday) + hour_bounds(today)[1:]
    buckets = hourly_counts(bounds=bounds, filters=filters)
    yesterday_summary, yesterday_series = _day_series(buckets, bounds, offset=0)
    today_summary, today_series = _day_series(buckets, bounds, offset=24)
    start, end = day_bounds(today)
    todays = orders.filter(created_at__gte=start, created_at__lt=end)
    return {
        "today": today_summary,
        "yesterday": yesterday_summary,
        **_groups(todays, filters),
        "durations": durations(orders=orders, start=start, end=end, sample=settings.ORDER_SCHEDULER["DURATION_SAMPLE"]),
        "hourly": {"today": today_series, "yesterday": yesterday_series},
        "date": today.isoformat(),
        "time_zone": timezone.get_current_timezone_name(),
        "filters": {"account": account or None, "strategy": strategy or None},
    }


def _stats_filters(*, account: str | None, strategy: str | None, accounts: set[str] | None) -> dict:
    """The Order filters of a statistics query, as keyword arguments."""
    filters = {name: value for name, value in (("account", account), ("strategy_name", strategy)) if value}
    if accounts is not None and not accounts:
        # A user who reaches no account: "" is never an account id, and unlike an empty
        # IN list it still compiles into the raw SQL of durations().
        filters["account"] = ""
    elif accounts is not None and account is None:
        filters["account__in"] = sorted(accounts)
    return filters


def _day_series(buckets: list[dict], bounds: list[datetime], *, offset: int) -> tuple[dict, list[dict]]:
    """One day's summary and its 24 hourly points, from the hourly buckets starting at
    `offset`."""
    counts: dict[str, int] = {}
    series = []
    for hour, per_status in enumerate(buckets[offset : offset + 24]):
        for status, n in per_status.items():
            counts[status] = counts.get(status, 0) + n
        series.append(
            {
                "hour": hour,
                "start": timezone.localtime(bounds[offset + hour]),
                "total": sum(per_status.values()),
                "success": per_status.get(OrderStatus.SUCCESS, 0),
                "failed": per_status.get(OrderStatus.FAILED, 0),
            }
        )
    return summarize(counts), series


def _groups(todays: QuerySet, filters: dict) -> dict:
    """Today's by_account, by_strategy and by_symbol groups."""
    if filters:
        fixed = {
            Order._meta.get_field(name).column: value for name, value in filters.items() if not name.endswith("__in")
        }
        return grouped_together(orders=todays, fixed=fixed)
    keys = {
        "account_id": list(Account.objects.values_list("id", flat=True)),
        "strategy_name": distinct_values("strategy_name"),
        "symbol": distinct_values("symbol"),
    }
    return {name: grouped(orders=todays, field=field, keys=keys[field]) for name, field in GROUPS.items()}


# --- Order history --------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFilters:
    account: str | None = None
    statuses: tuple[str, ...] = ()
    strategy: str | None = None
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    q: str | None = None  # exact or prefix of request_id, exchange order id or client order id
    accounts: tuple[str, ...] | None = None  # the user's visible accounts; None: all


class AccountHidden(QueryError):
    """A query naming an account the user may not see."""


def check_account_visible(account: str | None, *, allowed: set[str] | None) -> None:
    """Raises AccountHidden when a user limited to the accounts `allowed` (None: every
    account) asks for another one: an empty answer would hide the mistake."""
    if account and allowed is not None and account not in allowed:
        raise AccountHidden("account", f"You may not see account '{account}'.")


def visible_filters(filters: OrderFilters, *, user) -> OrderFilters:
    """`filters` limited to the accounts `user` may see, for every reader of the order
    history (the API's list and exports, the dashboard). Raises AccountHidden."""
    allowed = access.allowed_account_ids(user)
    check_account_visible(filters.account, allowed=allowed)
    return replace(filters, accounts=None if allowed is None else tuple(sorted(allowed)))


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_cursor: str | None
    has_more: bool


def encode_cursor(created_at: datetime, pk: int) -> str:
    """An opaque position in the newest-first history: just after the order
    (created_at, pk)."""
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, pk) of encode_cursor; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, pk = json.loads(raw)
        created_at = parse_datetime(stamp)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("not a cursor from this API") from None
    if created_at is None or timezone.is_naive(created_at) or not isinstance(pk, int) or isinstance(pk, bool):
        raise ValueError("not a cursor from this API")
    if not 0 <= pk < 2**63:  # past a 64-bit id, the database would refuse the number itself
        raise ValueError("not a cursor from this API")
    return created_at, pk


def _prefix(field: str, value: str) -> Q:
    """`field` starts with `value`, in a form the field's index can serve. SQLite
    compares text byte by byte, so the prefix is exactly the range [value, value with
    its last character incremented); its LIKE is case-insensitive and skips the index.
    Other databases' collations need not order text that way, so they get startswith."""
    if connection.vendor == "sqlite":
        upper = value[:-1] + chr(ord(value[-1]) + 1)
        return Q(**{f"{field}__gte": value, f"{field}__lt": upper})
    return Q(**{f"{field}__startswith": value})


def search(orders: QuerySet, q: str, *, accounts: tuple[str, ...] | set[str] | None = None) -> QuerySet:
    """Orders whose request id, exchange order id or client order id is `q` or starts
    with it. Each field's matches are counted through its own index first (at most
    SEARCH_MAX_MATCHES + 1 entries read); the page is then read from those matches.
    `accounts` (a user limited to some) bounds the count too: "more than N match" must
    not tell anyone how many orders other accounts placed."""
    matches = Q()
    for field in SEARCH_FIELDS:
        candidates = Order.objects.filter(_prefix(field, q)).order_by().values("id")
        if accounts is not None:
            candidates = candidates.filter(account_id__in=list(accounts))
        found = candidates[: SEARCH_MAX_MATCHES + 1].count()
        if found > SEARCH_MAX_MATCHES:
            raise QueryError(
                "q", f"More than {SEARCH_MAX_MATCHES} orders match '{q}'; type more of the id or narrow by time."
            )
        if found:
            matches |= Q(pk__in=candidates)
    return orders.filter(matches) if matches else orders.none()


def filtered_orders(filters: OrderFilters) -> QuerySet:
    """Orders matching every given filter (absent filters match everything)."""
    orders = Order.objects.all()
    exact = {
        "account_id": filters.account,
        "strategy_name": filters.strategy,
        "symbol": filters.symbol,
        "side": filters.side,
        "order_type": filters.order_type,
    }
    orders = orders.filter(**{field: value for field, value in exact.items() if value})
    if filters.accounts is not None:
        orders = orders.filter(account_id__in=filters.accounts)
    if filters.statuses:
        orders = orders.filter(status__in=sorted(set(filters.statuses)))
    if filters.since:
        orders = orders.filter(created_at__gte=filters.since)
    if filters.until:
        orders = orders.filter(created_at__lt=filters.until)
    if filters.q:
        orders = search(orders, filters.q, accounts=filters.accounts)
    return orders


def _page_keys(orders: QuerySet, *, statuses: tuple[str, ...], size: int) -> list[int]:
    """The ids of the first `size` orders, newest first, read from an index alone (whole
    rows are fetched afterwards for just those ids: asked for whole rows, SQLite sorts
    every match of a multi-status filter instead of stopping after the page). Several
    statuses are read one at a time, each along its own (X, status, created_at) run,
    and merged: as one IN query the planner may prefer walking X's whole history in time
    order, which takes seconds when the statuses are rare."""
    newest_first = ("-created_at", "-id")
    if len(statuses) <= 1:
        return list(orders.order_by(*newest_first).values_list("pk", flat=True)[:size])
    runs = [
        orders.filter(status=status).order_by(*newest_first).values_list("created_at", "pk")[:size]
        for status in statuses
    ]
    merged = heapq.merge(*(list(run) for run in runs), reverse=True)
    return [pk for _, pk in itertools.islice(merged, size)]


def _after(orders: QuerySet, after: tuple[datetime, int] | None) -> QuerySet:
    """The orders that come after the position (created_at, pk) in newest-first order."""
    if not after:
        return orders
    created_at, pk = after
    # The lone `created_at <= x` gives the index a range to start from; the OR then
    # skips the orders of that same instant that were already shown.
    return orders.filter(created_at__lte=created_at).filter(
        Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk)
    )


def order_history(*, filters: OrderFilters, limit: int, after: tuple[datetime, int] | None = None) -> OrderPage:
    """One page of the history, newest first (created_at, then id, both descending, so
    orders created in the same microsecond keep a fixed order). `after` is the position
    decoded from the previous page's next_cursor: the page starts right after it, so
    paging visits every matching order exactly once, even while new orders arrive."""
    orders = _after(filtered_orders(filters), after)
    keys = _page_keys(orders, statuses=filters.statuses, size=limit + 1)
    has_more = len(keys) > limit
    by_pk = Order.objects.select_related("retry_of").order_by().in_bulk(keys[:limit])
    rows = [by_pk[pk] for pk in keys[:limit] if pk in by_pk]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].pk) if has_more and rows else None
    return OrderPage(orders=rows, next_cursor=next_cursor, has_more=has_more)


def order_get(*, request_id: str, user=None) -> Order | None:
    """The order with this request_id, or None when there is none or it is on an account
    the user does not reach (`None` as the user is the system: every account). The one
    look-up of an order by its id, for reading it and for acting on it."""
    # A NUL or an overlong id cannot name an order (and PostgreSQL refuses NUL).
    if len(request_id) > 64 or "\x00" in request_id:
        return None
    order = Order.objects.select_related("account", "retry_of").filter(request_id=request_id).first()
    if order is None or not access.may_use_account(user, order.account_id):
        return None
    return order


def history_rows(*, filters: OrderFilters, columns: list[str], chunk_size: int = 1000) -> Iterator[tuple]:
    """Every order matching `filters`, newest first exactly as order_history pages them,
    as values_list() rows of `columns`: read one keyset page of `chunk_size` at a time
    (the page's ids from an index, then those rows by id), so any number of orders
    streams in constant memory and no query holds a read transaction open for long.

    The filters are checked at once (a too-broad search raises QueryError here, before
    the first row is asked for); the rows are read as they are consumed."""
    orders = filtered_orders(filters)

    def rows() -> Iterator[tuple]:
        after = None
        while True:
            keys = _page_keys(_after(orders, after), statuses=filters.statuses, size=chunk_size)
            if not keys:
                return
            found = Order.objects.filter(pk__in=keys).order_by().values_list("pk", "created_at", *columns)
            by_pk = {row[0]: row for row in found}
            for pk in keys:
                if pk in by_pk:  # orders are never deleted; tolerate it all the same
                    yield by_pk[pk][2:]
                    after = by_pk[pk][1], pk
            if len(keys) < chunk_size:
                return

    return rows()
