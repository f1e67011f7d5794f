from django.contrib import admin

from orders.models import Account, Order


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "mode", "enabled", "paused", "lease_owner", "lease_until", "config_error"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["request_id", "created_at", "account", "symbol", "side", "order_type", "amount", "status"]
    list_filter = ["status", "account", "strategy_name"]
    search_fields = ["request_id", "order_id", "client_order_id"]
