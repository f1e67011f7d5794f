from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # POST language=en|zh-hans: the language toggle (a cookie, then the browser's choice).
    path("i18n/", include("django.conf.urls.i18n")),
    # Log in and out from the browsable API's pages.
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Interactive docs (Swagger UI, served from our static files; its start-up script from
    # the same URL with ?script, not inline, for the Content-Security-Policy); a browser
    # that is not logged in is sent to the browsable API's login page first.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema"), login_url="rest_framework:login"),
        name="api-docs",
    ),
    path("", include("orders.urls")),
]
