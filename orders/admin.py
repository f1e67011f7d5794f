from django.contrib import admin

from orders.models import Account, Notification, Order


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "mode", "enabled", "paused", "lease_owner", "lease_until", "config_error"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["request_id", "created_at", "account", "symbol", "side", "order_type", "amount", "status"]
    list_filter = ["status", "account", "strategy_name"]
    search_fields = ["request_id", "order_id", "client_order_id"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: the outbox is written by the services and the sender only."""

    list_display = ["id", "event", "created_at", "silent", "sent_at", "gave_up_at", "attempts", "last_error"]
    list_filter = [
        "event",
        "silent",
        ("sent_at", admin.EmptyFieldListFilter),
        ("gave_up_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["text"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
