from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Order scheduler"
    default_auto_field = "django.db.models.BigAutoField"
