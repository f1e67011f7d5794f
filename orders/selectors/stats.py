"""Counts and statistics: every figure is computed by the database, over an index chosen
for its query (see the Order model's Meta.indexes); Python only folds a bounded number of
aggregate rows (one per status, per group, per hour) into the response, never the
orders themselves.

Counts take one shape because it lets SQLite answer from an index alone, however long
the history, without sorting: `X IN (every value) AND status IN (every status) AND
created_at in [start, end)` grouped by X and status, over an (X, status, created_at)
index: one index seek per (X, status) pair, and the rows come out already grouped.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, FloatField, Func, QuerySet
from django.utils import timezone

from orders.models import Account, Order, OrderStatus
from orders.selectors.dates import day_bounds, hour_bounds

ALL_STATUSES = tuple(OrderStatus.values)
PENDING_STATUSES = (OrderStatus.QUEUED, *OrderStatus.in_flight())


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
