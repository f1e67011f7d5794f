"""Role checks for the API (the rules are in orders.services.access)."""

from rest_framework.permissions import BasePermission

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
