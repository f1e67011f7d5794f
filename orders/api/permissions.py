"""Role checks and per-user throttling for the API (the rules are in orders.services.access)."""

from django.core.cache import caches
from rest_framework.permissions import BasePermission
from rest_framework.throttling import ScopedRateThrottle

from orders.services import access


class CanView(BasePermission):
    message = "Your role may not view orders."

    def has_permission(self, request, view) -> bool:
        return access.can_view(request.user)


class CanTrade(BasePermission):
    message = "Your role may not submit, cancel or retry orders."

    def has_permission(self, request, view) -> bool:
        return access.can_trade(request.user)


class CanOperate(BasePermission):
    message = "Your role may not pause or resume trading."

    def has_permission(self, request, view) -> bool:
        return access.can_operate(request.user)


class SubmitRateThrottle(ScopedRateThrottle):
    """Requests per user and view scope (submit, export, stats; the rates are in
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]), counted in the `throttle` cache (see
    settings.CACHES). Past the rate: 429 with Retry-After."""

    cache = caches["throttle"]


# The same counting for the expensive reads: one user's exports or statistics must not
# take the web threads that trading calls need.
ScopedThrottle = SubmitRateThrottle
