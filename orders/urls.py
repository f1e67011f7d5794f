from django.urls import path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from orders import views as pages
from orders.api import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard"), name="home"),
    path("order-scheduler", pages.dashboard, name="dashboard"),
    # The dashboard script's strings, in the request's language (locale/*/djangojs.po).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["orders"]), name="javascript-catalog"),
    path("api/order-scheduler/submit", views.SubmitView.as_view(), name="api-submit"),
    path("api/order-scheduler/status", views.StatusView.as_view(), name="api-status"),
    path("api/order-scheduler/orders", views.OrdersView.as_view(), name="api-orders"),
    path("api/order-scheduler/orders.csv", views.OrdersCsvView.as_view(), name="api-orders-csv"),
    path("api/order-scheduler/orders.xlsx", views.OrdersXlsxView.as_view(), name="api-orders-xlsx"),
    path("api/order-scheduler/orders/<str:request_id>", views.OrderDetailView.as_view(), name="api-order"),
    path("api/order-scheduler/events", views.EventsView.as_view(), name="api-events"),
    path("api/order-scheduler/stats", views.StatsView.as_view(), name="api-stats"),
    path(
        "api/order-scheduler/orders/<str:request_id>/cancel",
        views.OrderActionView.as_view(action="cancel"),
        name="api-order-cancel",
    ),
    path(
        "api/order-scheduler/orders/<str:request_id>/retry",
        views.OrderActionView.as_view(action="retry"),
        name="api-order-retry",
    ),
    path(
        "api/order-scheduler/orders/<str:request_id>/settle",
        views.SettleView.as_view(),
        name="api-order-settle",
    ),
    path("api/order-scheduler/pause", views.ControlView.as_view(action="pause"), name="api-pause"),
    path("api/order-scheduler/resume", views.ControlView.as_view(action="resume"), name="api-resume"),
    path("healthz", views.healthz, name="healthz"),
]
