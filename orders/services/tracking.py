"""Fill tracking: what the exchange says of placed orders after the placement reply.

The place reply says nothing of fills. A tracker beside the drainer (reads only, so the
account's next order never waits for it) asks in a few requests per account for the
open and latest filled orders, and follows orders resting on the book until they are
filled or cancelled. What it learns goes through orders.services.transitions: an order
the exchange cancelled with nothing filled fails, a settled order gets its second
journal line and its notification.
"""

import logging
import math
import time

from django.core.cache import cache
from django.utils import timezone

from orders.exchanges import get_exchange
from orders.exchanges.base import ExchangeError, Execution
from orders.models import RESTING_STATES, Account, Order, OrderStatus
from orders.services import transitions
from orders.services.reconcile import fill_fields, ticket_for

logger = logging.getLogger(__name__)

UNSETTLED_STATES = ("submitted", *RESTING_STATES)  # fill details still to come
TRACK_BATCH = 100
# Fills of freshly placed orders are asked for at most this often (seconds): each look-up
# costs a few requests and some CPU, however many orders it settles.
TRACK_SOON = 1.0


def _exchange_state(execution: Execution, **fields) -> tuple[dict, dict]:
    """The order fields and the event details of what the exchange says."""
    details = {
        "exchange_state": execution.state,
        "filled_amount": execution.filled_amount,
        "average_price": execution.average_price,
        "fee": execution.fee,
    }
    values = dict(**fill_fields(execution), exchange_checked_at=timezone.now(), **fields)
    return values, details


def record_exchange_state(order: Order, execution: Execution, *, actor: transitions.Actor, **fields) -> bool:
    """Write what the exchange says of the order; True when something changed."""
    values, details = _exchange_state(execution, **fields)
    return transitions.exchange_update(order, actor=actor, details=details, **values)


def track_open_orders(*, account_id: str) -> int:
    """Fetch fill details of freshly placed orders, and follow orders resting on the
    book until filled or cancelled: a few requests for the account's open and latest
    filled orders, then one look-up per order found in neither. The results are written
    in one transaction. Returns how many orders changed."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.enabled or account.config_error:
        return 0
    resting = list(
        Order.objects.filter(account_id=account_id, status=OrderStatus.SUCCESS, exchange_state__in=UNSETTLED_STATES)
        .select_related("account")
        .order_by("exchange_checked_at", "id")[:TRACK_BATCH]
    )
    if not resting:
        return 0
    exchange = get_exchange(account)
    found = []
    try:
        listed = exchange.fetch_orders([ticket_for(order) for order in resting])
        for order in resting:
            execution = listed.get(order.client_order_id) or exchange.fetch_order(ticket_for(order))
            if execution is not None:
                found.append((order, execution))
    except ExchangeError as exc:
        logger.warning("tracking open orders of %s failed: %s %s", account_id, exc.code, exc.message)
    updates = [(order, *_exchange_state(execution)) for order, execution in found]
    return transitions.exchange_update_many(updates, actor=transitions.WORKER) if updates else 0


def schedule_tracking() -> None:
    """Queue a look-up of unsettled orders per account, at most once per TRACK_INTERVAL."""
    from django.conf import settings

    accounts = (
        Order.objects.filter(status=OrderStatus.SUCCESS, exchange_state__in=UNSETTLED_STATES)
        .values_list("account_id", flat=True)
        .distinct()
    )
    for account_id in list(accounts):
        request_tracking(account_id=account_id, within=settings.ORDER_SCHEDULER["TRACK_INTERVAL"])


_tracking_asked: dict[str, float] = {}
# Accounts whose latest request was folded into an earlier one, which may have run
# before the order that asked existed: the drainer asks once more when it is done.
_tracking_owed: set[str] = set()


def request_tracking(*, account_id: str, within: float, force: bool = False) -> None:
    """Queue a look-up of the account's unsettled orders unless one was queued less
    than `within` seconds ago (the shared cache remembers, across processes and hosts),
    or in any case when forced."""
    from django_q.tasks import async_task

    key = f"order-scheduler:track:{account_id}:{within:g}"
    now = time.monotonic()
    # This process asked already: spare the shared cache a round trip per order.
    asked = not force and now - _tracking_asked.get(key, -math.inf) < within
    if asked or not (force or cache.add(key, 1, timeout=within)):
        _tracking_owed.add(account_id)
        return
    _tracking_asked[key] = now
    _tracking_owed.discard(account_id)
    async_task("orders.tasks.track_open_orders", account_id, task_name=f"track:{account_id}", group="track")


def settle_owed_tracking(*, account_id: str) -> None:
    """A drainer that is done asks once more for fills it folded into an earlier look-up."""
    if account_id in _tracking_owed:
        request_tracking(account_id=account_id, within=TRACK_SOON, force=True)
