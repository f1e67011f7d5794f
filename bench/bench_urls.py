"""The service's URLs plus the ceilings bench/submit.py measures submit against: views
that insert one order row with no validation and no authentication, one through Django
REST framework with the project's DRF settings (the issue's "bare Django + DRF one-row
insert") and one in plain Django.

The rows are written already cancelled: the same one-row insert, but no drainer ever
takes them, so the ceiling's rounds leave no backlog for the cluster to execute during
the submit rounds that follow (that work would be charged to submit)."""

import uuid

from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Order, OrderStatus


def _insert_one(data: dict) -> str:
    stamp = uuid.uuid4().hex
    Order.objects.create(
        request_id=f"BARE_{stamp}",
        client_order_id=f"b{stamp[:31]}",
        account_id="account_main",
        symbol=data.get("symbol") or "BTC/USDT:USDT",
        side=data.get("side") or "buy",
        order_type="market",
        amount=1,
        status=OrderStatus.CANCELLED,
    )
    return stamp


class BareDrfInsert(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"success": True, "id": _insert_one(request.data)}, status=201)


@csrf_exempt
def bare_insert(request):
    return JsonResponse({"success": True, "id": _insert_one({})})


urlpatterns = [
    path("bench/bare-drf-insert", BareDrfInsert.as_view()),
    path("bench/bare-insert", bare_insert),
    path("", include("scheduler_site.urls")),
]
