import sys

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Order scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        if sys.argv[1:2] == ["qcluster"]:
            from orders.exchanges import preload

            preload()
