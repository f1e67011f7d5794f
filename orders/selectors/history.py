"""The order history: filters, search, keyset pages and the rows of an export, limited to
the accounts a user may see.

A page is `ORDER BY created_at DESC, id DESC LIMIT n` over an index that ends in
created_at (created_at alone, or a filter column then created_at), with a keyset
cursor, so a page deep in history costs what the first one does, however long the
history, without sorting.
"""

import base64
import binascii
import heapq
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders.models import Order
from orders.selectors.errors import QueryError
from orders.services import access

SEARCH_FIELDS = ("request_id", "order_id", "client_order_id")
# A search term must narrow the history down to at most this many orders per id field:
# the matches are then read through that field's index and sorted by time, a bounded
# cost. A broader prefix is refused rather than allowed to sort a large part of the
# history.
SEARCH_MAX_MATCHES = 5000


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


def visible_accounts(account: str | None, *, user) -> set[str] | None:
    """The accounts `user` may see (None: every account), for a read that names `account`
    (or none). Raises AccountHidden when it names one the user may not see."""
    allowed = access.allowed_account_ids(user)
    if account and allowed is not None and account not in allowed:
        raise AccountHidden("account", f"You may not see account '{account}'.")  # not an empty answer
    return allowed


def visible_filters(filters: OrderFilters, *, user) -> OrderFilters:
    """`filters` limited to the accounts `user` may see, for every reader of the order
    history (the API's list and exports, the dashboard). Raises AccountHidden."""
    allowed = visible_accounts(filters.account, user=user)
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
