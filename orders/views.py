"""The dashboard page: the first view is rendered on the server from the same selectors
and serializers as the API (so it is useful without JavaScript), and the same data goes
into the page as JSON for the script, which then keeps it fresh through the API."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import json_script
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from rest_framework.utils.encoders import JSONEncoder

from orders import selectors
from orders.api.serializers import OrdersQuerySerializer
from orders.models import OrderStatus
from orders.representation import OrderSerializer
from orders.services import access, stream

PAGE_SIZE = 100
STATUS_LABELS = {
    OrderStatus.QUEUED: _("Queued"),
    OrderStatus.PROCESSING: _("Processing"),
    OrderStatus.UNKNOWN: _("Unknown"),
    OrderStatus.SUCCESS: _("Success"),
    OrderStatus.FAILED: _("Failed"),
    OrderStatus.CANCELLED: _("Cancelled"),
    OrderStatus.EXPIRED: _("Expired"),
}
SIDE_LABELS = {"buy": _("Buy"), "sell": _("Sell")}
TYPE_LABELS = {"market": _("Market"), "limit": _("Limit")}


def _number(value) -> str:
    """A Decimal as plain digits (the serializer normalises 10 to 1E+1)."""
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _row(order: dict, *, can_trade: bool) -> dict:
    """What a table row shows of one serialized order (the script builds the same)."""
    stamp = order["timestamp"] or ""
    status = order["status"]
    return {
        **order,
        "time": f"{stamp[5:10]} {stamp[11:19]}",
        "amount_text": _number(order["amount"]),
        "price_text": _number(order["price"]),
        "status_label": STATUS_LABELS.get(status, status),
        "side_label": SIDE_LABELS.get(order["side"], order["side"]),
        "type_label": TYPE_LABELS.get(order["order_type"], order["order_type"]),
        "can_cancel": can_trade and "cancel" in order["actions"],
        "can_retry": can_trade and "retry" in order["actions"],
    }


def age_text(seconds: float | None) -> str:
    """A waiting time as people read it: 12 s, 3 min 5 s, 15 min, 2 h 4 min, 3 d 4 h
    (the script's age() says the same)."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    d, h, m, s = total // 86400, total // 3600 % 24, total // 60 % 60, total % 60
    if d:
        return _("%(d)s d %(h)s h") % {"d": d, "h": h}
    if h:
        return _("%(h)s h %(m)s min") % {"h": h, "m": m}
    if m >= 10:
        return _("%(m)s min") % {"m": m}
    if m:
        return _("%(m)s min %(s)s s") % {"m": m, "s": s}
    return _("%(s)s s") % {"s": s}


def _compare(stats: dict) -> list[tuple]:
    """Today against yesterday: (key, label, today, yesterday, change, tone) rows."""
    today, yesterday = stats["today"], stats["yesterday"]
    rows = []
    for key, label, better in COMPARED:
        a, b = today[key], yesterday[key]
        change = round(a - b, 2)
        if key == "success_rate":
            text = (f"{a:.2f} %", f"{b:.2f} %", f"{change:+.2f} pp" if change else "0")
        else:
            text = (str(a), str(b), f"{change:+d}" if change else "0")
        tone = "" if not change or better is None else ("up" if (change > 0) == better else "down")
        rows.append((key, label, *text, tone))
    return rows


# (key, label, whether more is better: True, False or None for neither)
COMPARED = [
    ("total", _("Total"), None),
    ("success", _("Success"), True),
    ("failed", _("Failed"), False),
    ("success_rate", _("Success rate"), True),
    ("cancelled", _("Cancelled"), None),
    ("expired", _("Expired"), False),
    ("pending", _("Pending"), None),
]


def _account_states(account: dict) -> list[tuple[str, str, str]]:
    """(state, label, detail) tags of an account (the script's accountStates())."""
    states = []
    if not account["enabled"]:
        states.append(("disabled", _("Disabled"), ""))
    if account["paused"]:
        states.append(("paused", _("Paused"), account["pause_reason"]))
    if account["config_error"]:
        states.append(("config", _("Config error"), account["config_error"]))
    if account["locked"]:
        states.append(("locked", _("Working"), ""))
    return states or [("ready", _("Ready"), "")]


def _groups(stats: dict) -> list[tuple[str, str, list[tuple[str, dict]]]]:
    return [
        ("by_account", _("By account"), list(stats["by_account"].items())),
        ("by_strategy", _("By strategy"), list(stats["by_strategy"].items())),
        ("by_symbol", _("By symbol"), list(stats["by_symbol"].items())),
    ]


def _order_page(request) -> tuple[selectors.OrderPage | None, dict]:
    """The page of orders that the query string asks for, read as the order list API
    reads it, or why it cannot be read (the page shows that next to the filters)."""
    query = OrdersQuerySerializer(data=request.GET)
    if not query.is_valid():
        return None, query.errors
    try:
        filters = selectors.visible_filters(query.filters(), user=request.user)
        after = query.validated_data.get("cursor")
        return selectors.order_history(filters=filters, limit=PAGE_SIZE, after=after), {}
    except selectors.QueryError as exc:
        return None, {exc.field: [exc.message]}


def _config(user, *, last_event_id: int) -> dict:
    """What the script needs besides the data: the API's URLs, timings and rights."""
    return {
        "urls": {
            "status": reverse("api-status"),
            "orders": reverse("api-orders"),
            "orders_csv": reverse("api-orders-csv"),
            "orders_xlsx": reverse("api-orders-xlsx"),
            "events": reverse("api-events"),
            "stats": reverse("api-stats"),
            "submit": reverse("api-submit"),
            "pause": reverse("api-pause"),
            "resume": reverse("api-resume"),
            "login": settings.LOGIN_URL,
        },
        "page_size": PAGE_SIZE,
        # Polling period while the live stream is down; the stream's heartbeat period.
        "refresh_ms": 5000,
        "heartbeat_s": 5,
        "last_event_id": last_event_id,
        "can_trade": access.user_can_trade(user),
        "can_operate": access.user_can_operate(user),
    }


def _link_queries(params, page: selectors.OrderPage | None) -> tuple[str, str]:
    """The query strings of the page's links: the filters without the page position,
    and the same leading to the next page."""
    filter_params = params.copy()
    for key in ("cursor", "limit"):
        filter_params.pop(key, None)
    next_params = filter_params.copy()
    if page and page.next_cursor:
        next_params["cursor"] = page.next_cursor
    return filter_params.urlencode(), next_params.urlencode()


@never_cache
@login_required
def dashboard(request):
    """GET /order-scheduler: status, order history (the filters and page in the query
    string, as the order list API takes them) and statistics."""
    user = request.user
    if not access.user_can_view(user):
        raise PermissionDenied
    # Read before the data below: the script's stream starts after this event, so a
    # change made while the page was being rendered is pushed, not lost.
    config = _config(user, last_event_id=stream.head_id())
    page, filter_errors = _order_page(request)
    orders = OrderSerializer(page.orders, many=True).data if page else []
    status = selectors.status_for(user)
    stats = selectors.statistics(accounts=access.allowed_account_ids(user))
    page_data = {
        "orders": orders,
        "next_cursor": page.next_cursor if page else None,
        "has_more": bool(page and page.has_more),
    }
    initial = {"status": status, "stats": stats, "orders": page_data, "filter_errors": filter_errors}
    filter_query, next_query = _link_queries(request.GET, page)
    selected = {part for value in request.GET.getlist("status") for part in value.split(",")}
    context = {
        "config_json": json_script(config, "dashboard-config"),
        "initial_json": json_script(initial, "initial-data", encoder=JSONEncoder),
        "status": status,
        "stats": stats,
        "groups": _groups(stats),
        "rows": [_row(order, can_trade=config["can_trade"]) for order in orders],
        "page": page,
        "filter_errors": filter_errors,
        "params": request.GET,
        "filter_query": filter_query,
        "next_query": next_query,
        "oldest_age": age_text(status["oldest_queued_age_seconds"]),
        "compare": _compare(stats),
        "durations": [
            ("queue_wait_ms", _("Queue wait"), stats["durations"]["queue_wait_ms"]),
            ("execution_ms", _("Execution"), stats["durations"]["execution_ms"]),
        ],
        "statuses": [(value, STATUS_LABELS[value], value in selected) for value in OrderStatus.values],
        "accounts": [{**account, "states": _account_states(account)} for account in status["accounts"]],
        "can_trade": config["can_trade"],
        "can_operate": config["can_operate"],
        # The desk-wide switch: only for an operator who reaches every account.
        "can_operate_all": access.may_control(user, None),
        "time_zone": stats["time_zone"],
    }
    return render(request, "orders/dashboard.html", context)
