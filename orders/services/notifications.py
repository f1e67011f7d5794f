"""Operator notifications for scheduler events. Never blocks or fails an order: every
function here only records the event; delivery happens elsewhere."""

import logging

from orders.models import Order, OrderStatus

logger = logging.getLogger("orders.events")


def order_finished(*, order: Order) -> None:
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


def account_paused(*, account_id: str, reason: str) -> None:
    logger.warning("account %s paused: %s", account_id, reason)
