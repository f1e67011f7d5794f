"""The REST API: each view parses input, calls one service or selector, renders output."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors
from orders.api.errors import error_response
from orders.api.serializers import IDEMPOTENCY_KEY_RE, OrdersQuerySerializer, OrderSubmitSerializer
from orders.models import Order
from orders.serializers import OrderSerializer
from orders.services.submit import SubmitError, order_submit

SUBMITTED = "Order submitted to scheduler"


class SubmitView(APIView):
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

        idempotency_key = request.headers.get("Idempotency-Key") or None
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            return error_response("Invalid request", {"Idempotency-Key": ["At most 100 printable ASCII characters."]})

        serializer = OrderSubmitSerializer(data=data, many=batch)
        if not serializer.is_valid():
            errors = serializer.errors
            if batch:  # DRF keys a list's errors by index; answer with a list aligned with the input
                errors = [errors.get(index, {}) for index in range(len(data))]
            return error_response("Invalid order", errors)
        items = serializer.validated_data if batch else [serializer.validated_data]
        try:
            result = order_submit(
                items=items,
                user=request.user,
                idempotency_key=idempotency_key,
                batch=batch,
            )
        except SubmitError as exc:
            return error_response(exc.message, exc.errors, status_code=exc.status)

        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        message = SUBMITTED if result.created else "Order already submitted; returning the existing order"
        orders = OrderSerializer(result.orders, many=True).data
        if batch:
            body = {"success": True, "request_ids": [o.request_id for o in result.orders], "message": message}
            return Response({**body, "created": result.created, "orders": orders}, status=code)
        order = result.orders[0]
        body = {"success": True, "request_id": order.request_id, "message": message}
        return Response({**body, "created": result.created, "status": order.status, "order": orders[0]}, status=code)


class StatusView(APIView):
    def get(self, request):
        return Response({"success": True, "status": selectors.scheduler_status()})


class OrdersView(APIView):
    def get(self, request):
        query = OrdersQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return error_response("Invalid query", query.errors)
        params = query.validated_data
        orders = Order.objects.select_related("retry_of").order_by("-created_at", "-id")
        if params.get("account"):
            orders = orders.filter(account_id=params["account"])
        rows = OrderSerializer(orders[: params["limit"]], many=True).data
        return Response({"success": True, "orders": rows})


class StatsView(APIView):
    def get(self, request):
        return Response({"success": True, "stats": selectors.statistics()})


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
