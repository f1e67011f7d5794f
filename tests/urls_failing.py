"""A URLconf for tests/test_secret_hygiene.py: the site's own URLs plus one view that
fails with a secret in its local variables and its exception message."""

import os

from django.urls import path

from scheduler_site.urls import urlpatterns as site_urlpatterns


def failing(request):
    credential = os.environ["DESK_ALPHA"]  # noqa: F841 - a frame variable the error page would show
    raise RuntimeError(f"could not connect with {os.environ['DESK_ALPHA']}")


urlpatterns = [path("boom", failing), *site_urlpatterns]
