"""The service's URLs plus the bare-Django ceiling used by bench/submit.py: a view that
inserts one order row with no validation, no authentication and no DRF."""

import uuid

from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from orders.models import Order


@csrf_exempt
def bare_insert(request):
    stamp = uuid.uuid4().hex
    Order.objects.create(
        request_id=f"BARE_{stamp}",
        client_order_id=f"b{stamp[:31]}",
        account_id="account_main",
        symbol="BTC/USDT:USDT",
        side="buy",
        order_type="market",
        amount=1,
    )
    return JsonResponse({"success": True})


urlpatterns = [path("bench/bare-insert", bare_insert), path("", include("scheduler_site.urls"))]
