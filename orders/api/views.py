"""The REST API: each view parses input, calls one service or selector, renders output."""

import tempfile

from django.conf import settings
from django.db import connection
from django.http import FileResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors
from orders.api import schema
from orders.api.errors import InvalidQuery, error_response
from orders.api.permissions import CanOperate, CanTrade, CanView, ScopedThrottle
from orders.api.serializers import (
    IDEMPOTENCY_KEY_RE,
    ControlRequestSerializer,
    EventsQuerySerializer,
    OrdersCsvQuerySerializer,
    OrdersExportQuerySerializer,
    OrdersQuerySerializer,
    OrderSubmitSerializer,
    SettleRequestSerializer,
    StatsQuerySerializer,
)
from orders.representation import OrderSerializer, order_data
from orders.selectors import status_for
from orders.services.audit import client_address
from orders.services.controls import pause, resume
from orders.services.errors import NotFound
from orders.services.exports import orders_csv, orders_xlsx
from orders.services.lifecycle import order_cancel, order_retry
from orders.services.reconcile import order_settle
from orders.services.stream import Scope, StreamBusy, open_stream
from orders.services.submit import order_submit

SUBMITTED = "Order submitted to scheduler"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AUTH_ERRORS = {401: schema.ErrorSerializer, 403: schema.ErrorSerializer}


class SubmitView(APIView):
    permission_classes = [CanTrade]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "submit"

    @extend_schema(
        operation_id="submit",
        summary="Submit an order (or a list of orders, all or nothing)",
        request=schema.SUBMIT_REQUEST,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="Replaying a key returns the orders it created instead of creating them again.",
            )
        ],
        responses={
            201: schema.SUBMIT_RESPONSE,
            200: schema.SUBMIT_RESPONSE,
            400: schema.ErrorSerializer,
            409: schema.ErrorSerializer,
            429: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def post(self, request):
        data = request.data
        batch = isinstance(data, list)
        if batch:
            if not data:
                return error_response("Invalid request", {"non_field_errors": ["An empty batch."]})
            cap = settings.ORDER_SCHEDULER["MAX_BATCH"]
            if len(data) > cap:
                return error_response("Invalid request", {"non_field_errors": [f"At most {cap} orders per batch."]})
        elif not isinstance(data, dict):
            return error_response("Invalid request", {"non_field_errors": ["Send a JSON object or a list of them."]})

        idempotency_key = request.headers.get("Idempotency-Key")  # present but empty is refused, not ignored
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            return error_response("Invalid request", {"Idempotency-Key": ["At most 100 printable ASCII characters."]})

        serializer = OrderSubmitSerializer(data=data, many=batch)
        if not serializer.is_valid():
            errors = serializer.errors
            if batch:  # always a list of objects aligned with the input, as the schema says
                errors = batch_errors(errors, len(data))
            return error_response("Invalid order", errors)
        items = serializer.validated_data if batch else [serializer.validated_data]
        result = order_submit(
            items=items,
            user=request.user,
            idempotency_key=idempotency_key,
            batch=batch,
            source=client_address(request),
        )

        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        message = SUBMITTED if result.created else "Order already submitted; returning the existing order"
        orders = [order_data(order) for order in result.orders]
        if batch:
            body = {"success": True, "request_ids": [o.request_id for o in result.orders], "message": message}
            return Response({**body, "created": result.created, "orders": orders}, status=code)
        order = result.orders[0]
        body = {"success": True, "request_id": order.request_id, "message": message}
        return Response({**body, "created": result.created, "status": order.status, "order": orders[0]}, status=code)


def batch_errors(errors, count: int) -> list[dict]:
    """DRF's errors of a list serializer as one object per input item: {} for a valid
    item, {"field": [messages]} for an invalid one. DRF gives a dict keyed by index, or a
    list whose items may be bare message lists (an item that is null, not an object):
    those become {"non_field_errors": [...]}."""
    if isinstance(errors, dict):
        if "non_field_errors" in errors:  # about the list itself
            return [{"non_field_errors": list(errors["non_field_errors"])}] * count
        errors = [errors.get(index, {}) for index in range(count)]
    aligned = []
    for item in list(errors)[:count]:
        if isinstance(item, dict):
            aligned.append(
                {
                    str(key): [str(m) for m in value] if isinstance(value, list) else [str(value)]
                    for key, value in item.items()
                }
            )
        else:
            aligned.append({"non_field_errors": [str(m) for m in item] if isinstance(item, list) else [str(item)]})
    return aligned + [{}] * (count - len(aligned))


class StatusView(APIView):
    permission_classes = [CanView]

    @extend_schema(
        operation_id="status",
        summary="Scheduler status",
        responses={200: schema.StatusResponseSerializer, **AUTH_ERRORS},
    )
    def get(self, request):
        status_ = status_for(request.user)
        return Response({"success": True, "status": status_})


class OrdersView(APIView):
    permission_classes = [CanView]

    @extend_schema(
        operation_id="orders_list",
        summary="Order history, newest first, filtered and paged",
        parameters=[OrdersQuerySerializer],
        responses={
            200: schema.OrdersResponseSerializer,
            400: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request):
        query = _query(OrdersQuerySerializer, request)
        page = selectors.order_history(
            filters=selectors.visible_filters(query.filters(), user=request.user),
            limit=query.validated_data["limit"],
            after=query.validated_data.get("cursor"),
        )
        orders = OrderSerializer(page.orders, many=True).data
        return Response(
            {
                "success": True,
                "orders": orders,
                "next_cursor": page.next_cursor,
                "has_more": page.has_more,
            }
        )


class OrdersCsvView(APIView):
    """The order list as a CSV download: every order the filters match, streamed.
    Throttled per user (ORDER_SCHEDULER_EXPORT_RATE) and bounded in rows
    (ORDER_SCHEDULER_EXPORT_MAX_ROWS): a larger export is refused with a 400 saying how
    to narrow it, before anything is streamed."""

    permission_classes = [CanView]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "export"

    @extend_schema(
        operation_id="orders_csv",
        summary="Every order matching the filters, as CSV (streamed, newest first)",
        description="Takes the order list's filters (not limit or cursor) and answers with all matching "
        "orders, one CSV line each, under a header of the order fields' names. `bom=true` starts the file "
        "with a UTF-8 byte order mark for Excel.",
        parameters=[OrdersCsvQuerySerializer],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            400: schema.ErrorSerializer,
            429: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request):
        query = _query(OrdersCsvQuerySerializer, request)
        lines = orders_csv(
            filters=selectors.visible_filters(query.filters(), user=request.user),
            bom=query.validated_data["bom"],
            max_rows=settings.ORDER_SCHEDULER["EXPORT_MAX_ROWS"],
        )
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        return _download(response, "csv")


class OrdersXlsxView(APIView):
    """The order list as an Excel workbook: the CSV's rows, numbers as numbers. Throttled
    and bounded as the CSV export."""

    permission_classes = [CanView]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "export"

    @extend_schema(
        operation_id="orders_xlsx",
        summary="Every order matching the filters, as an Excel workbook (newest first)",
        description="The same filters, access rules, columns, rows and formula guard as orders.csv; "
        "written in constant memory (openpyxl's write-only mode) and sent when complete.",
        parameters=[OrdersExportQuerySerializer],
        responses={
            (200, XLSX): OpenApiTypes.BINARY,
            400: schema.ErrorSerializer,
            429: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request):
        query = _query(OrdersExportQuerySerializer, request)
        filters = selectors.visible_filters(query.filters(), user=request.user)
        # A workbook is a zip: complete only at the end. It is built in a temporary file
        # (constant memory) and streamed from there; the file is gone once closed.
        out = tempfile.TemporaryFile()
        try:
            orders_xlsx(filters=filters, out=out, max_rows=settings.ORDER_SCHEDULER["EXPORT_MAX_ROWS"])
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return _download(FileResponse(out, content_type=XLSX), "xlsx")


def _query(serializer_class, request):
    """The request's query parameters, validated by `serializer_class`; raises
    InvalidQuery (a 400 naming each parameter at fault)."""
    query = serializer_class(data=request.query_params)
    if not query.is_valid():
        raise InvalidQuery(query.errors)
    return query


def _download(response, extension: str):
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="orders-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


class EventStreamRenderer(BaseRenderer):
    """Lets a client that accepts only text/event-stream (EventSource) through content
    negotiation; the stream itself is a StreamingHttpResponse, and an error before it
    starts is still the API's JSON error."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class EventsView(APIView):
    """The live stream of order and service events (Server-Sent Events)."""

    permission_classes = [CanView]
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="events",
        summary="Live stream of order and service events (Server-Sent Events), with resume",
        description=schema.EVENTS_DESCRIPTION,
        parameters=[
            EventsQuerySerializer,
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                description="Resume after this event id (sent by EventSource when it reconnects).",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            400: schema.ErrorSerializer,
            503: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request):
        data = _query(EventsQuerySerializer, request).validated_data
        since = data.get("since")
        header = request.headers.get("Last-Event-ID", "").strip()
        if header:
            if not header.isascii() or not header.isdigit() or len(header) > 19:
                return error_response("Invalid request", {"Last-Event-ID": ["An event id: a whole number."]})
            since = int(header)
        allowed = selectors.visible_accounts(data.get("account"), user=request.user)
        scope = Scope(
            allowed=None if allowed is None else frozenset(allowed),
            account=data.get("account"),
            strategy=data.get("strategy"),
            request_id=data.get("request_id"),
        )
        try:
            stream = open_stream(scope=scope, since=since, heartbeat=data["heartbeat"])
        except StreamBusy as exc:
            response = error_response(f"No stream available: {exc}.", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
            response["Retry-After"] = "5"
            return response
        response = StreamingHttpResponse(stream, content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache, no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each frame on at once
        return response


class OrderDetailView(APIView):
    permission_classes = [CanView]

    @extend_schema(
        operation_id="order_detail",
        summary="One order, with its error and timings",
        responses={
            200: schema.OrderDetailResponseSerializer,
            404: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request, request_id: str):
        order = selectors.order_get(request_id=request_id, user=request.user)
        if order is None:
            raise NotFound(f"No order with request_id '{request_id}'.")
        return Response({"success": True, "order": OrderSerializer(order).data})


class StatsView(APIView):
    permission_classes = [CanView]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "stats"

    @extend_schema(
        operation_id="stats",
        summary="Statistics: today, yesterday, groups, durations, hourly series",
        parameters=[StatsQuerySerializer],
        responses={
            200: schema.StatsResponseSerializer,
            400: schema.ErrorSerializer,
            429: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def get(self, request):
        data = _query(StatsQuerySerializer, request).validated_data
        allowed = selectors.visible_accounts(data.get("account"), user=request.user)
        return Response({"success": True, "stats": selectors.statistics(**data, accounts=allowed)})


class OrderActionView(APIView):
    """POST .../orders/<request_id>/cancel and .../retry: one service call each."""

    permission_classes = [CanTrade]
    action = ""

    @extend_schema(
        request=None,
        responses={
            200: schema.OrderActionResponseSerializer,
            201: schema.OrderActionResponseSerializer,
            404: schema.ErrorSerializer,
            409: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def post(self, request, request_id: str):
        service = order_cancel if self.action == "cancel" else order_retry
        result = service(request_id=request_id, user=request.user, source=client_address(request))
        if self.action == "retry":
            message, code = f"Order resubmitted as {result.request_id}", status.HTTP_201_CREATED
        elif result.status == "cancelled":
            message, code = "Order cancelled", status.HTTP_200_OK
        else:
            message, code = "Cancel requested on the exchange", status.HTTP_200_OK
        body = {"success": True, "request_id": result.request_id, "message": message}
        return Response({**body, "order": OrderSerializer(result).data}, status=code)


class SettleView(APIView):
    """POST .../orders/<request_id>/settle: an operator states what became of an order
    whose outcome is unknown."""

    permission_classes = [CanOperate]

    @extend_schema(
        request=SettleRequestSerializer,
        responses={
            200: schema.OrderActionResponseSerializer,
            400: schema.ErrorSerializer,
            404: schema.ErrorSerializer,
            409: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
    )
    def post(self, request, request_id: str):
        query = SettleRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        placed = query.validated_data["outcome"] == "placed"
        order = order_settle(
            request_id=request_id,
            placed=placed,
            exchange_order_id=query.validated_data.get("exchange_order_id", ""),
            user=request.user,
            source=client_address(request),
        )
        message = f"Order settled as {'placed' if placed else 'not placed'}"
        body = {"success": True, "request_id": order.request_id, "message": message}
        return Response({**body, "order": OrderSerializer(order).data})


class ControlView(APIView):
    """POST .../pause and .../resume: the kill switch, for one account or all trading."""

    permission_classes = [CanOperate]
    action = ""

    @extend_schema(
        request=ControlRequestSerializer,
        responses={
            200: schema.ControlResponseSerializer,
            400: schema.ErrorSerializer,
            404: schema.ErrorSerializer,
            **AUTH_ERRORS,
        },
        description="An account needs the operate right on it; all trading (no account) needs an operator "
        "who reaches every account.",
    )
    def post(self, request):
        query = ControlRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        account = query.validated_data.get("account") or None
        source = client_address(request)
        if self.action == "pause":
            reason = query.validated_data.get("reason", "")
            pause(account_id=account, reason=reason, user=request.user, source=source)
        else:
            resume(account_id=account, user=request.user, source=source)
        message = f"{self.action.capitalize()}d {f'account {account}' if account else 'all trading'}"
        status_ = status_for(request.user)
        return Response({"success": True, "message": message, "status": status_})


def healthz(request):
    """Liveness for load balancers: the process and the database answer (200, else 503).
    `?ready=1` asks for readiness: also at least one django-q2 cluster publishes its
    heartbeat, so an order accepted here will be executed."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"ok": False, "database": False}, status=503)
    body = {"ok": True, "database": True}
    if request.GET.get("ready", "").lower() in ("1", "true", "yes"):
        clusters = selectors.cluster_status()["clusters"]
        body.update(ok=clusters > 0, clusters=clusters)
    return JsonResponse(body, status=200 if body["ok"] else 503)
