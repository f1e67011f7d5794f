from django.urls import path

from orders.api import views

urlpatterns = [
    path("api/order-scheduler/submit", views.SubmitView.as_view(), name="api-submit"),
    path("api/order-scheduler/status", views.StatusView.as_view(), name="api-status"),
    path("api/order-scheduler/orders", views.OrdersView.as_view(), name="api-orders"),
    path("api/order-scheduler/orders/<str:request_id>", views.OrderDetailView.as_view(), name="api-order"),
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
    path("api/order-scheduler/pause", views.ControlView.as_view(action="pause"), name="api-pause"),
    path("api/order-scheduler/resume", views.ControlView.as_view(action="resume"), name="api-resume"),
    path("healthz", views.healthz, name="healthz"),
]
