"""Role checks and per-user throttling for the API (the rules are in orders.services.access)."""

from django.core.cache import caches
from rest_framework.permissions import BasePermission
from rest_framework.throttling import ScopedRateThrottle

from orders.services import access


class CanView(BasePermission):
    message = "Your role may not view orders."

    def has_permission(self, request, view) -> bool:
        return access.user_can_view(request.user)


class CanTrade(BasePermission):
    message = "Your role may not submit, cancel or retry orders."

    def has_permission(self, request, view) -> bool:
        return access.user_can_trade(request.user)


class CanOperate(BasePermission):
    message = "Your role may not pause or resume trading."

    def has_permission(self, request, view) -> bool:
        return access.user_can_operate(request.user)


class ScopedThrottle(ScopedRateThrottle):
    """Requests per user and view scope (submit, export, stats; the rates are in
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]), counted in the `throttle` cache (see
    settings.CACHES). Past the rate: 429 with Retry-After.

    Counted with an atomic increment per fixed window rather than DRF's read-then-write
    history list, which lets concurrent requests (eight exports opened at once) all read
    the same count and all pass."""

    cache = caches["throttle"]

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view) if self.rate else None
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        key = f"{self.key}:{window}"
        self.cache.add(key, 0, self.duration + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's counter expired between add and incr
            self.cache.add(key, 1, self.duration + 1)
            count = 1
        self.retry_after = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self) -> float:
        return self.retry_after
