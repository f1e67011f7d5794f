"""Reads: status, order history and statistics, one module per concept. `dates` turns
days, hours and query parameters into time bounds; `errors` holds QueryError, the error
every selector raises for a query it refuses; `stats` counts orders and builds the
statistics; `status` reports the scheduler's status (workers, queue, accounts,
Telegram); `history` filters, searches and pages the order history and streams an
export's rows. The names callers use are re-exported here, so `from orders.selectors
import ...` and `selectors.<name>` keep working; everything else is imported from its
module.
"""

from orders.selectors.dates import day_bounds, parse_time_bound
from orders.selectors.errors import QueryError
from orders.selectors.history import (
    AccountHidden,
    OrderFilters,
    OrderPage,
    decode_cursor,
    encode_cursor,
    filtered_orders,
    history_rows,
    order_get,
    order_history,
    search,
    visible_accounts,
    visible_filters,
)
from orders.selectors.stats import distinct_values, statistics
from orders.selectors.status import cluster_stalled, cluster_status, status_for

__all__ = [
    "AccountHidden",
    "OrderFilters",
    "OrderPage",
    "QueryError",
    "visible_accounts",
    "cluster_stalled",
    "cluster_status",
    "day_bounds",
    "decode_cursor",
    "distinct_values",
    "encode_cursor",
    "filtered_orders",
    "history_rows",
    "order_get",
    "order_history",
    "parse_time_bound",
    "search",
    "statistics",
    "status_for",
    "visible_filters",
]
