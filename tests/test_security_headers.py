"""Security headers and sessions: a Content-Security-Policy without inline scripts on
every page (the pages carry no inline script either), the headers on early answers such
as the 413, sessions that end after hours, HSTS subdomains and preload only on request."""

import re

import pytest
from django.test import Client

from tests.helpers import make_order

pytestmark = pytest.mark.django_db
PAGES = [
    "/order-scheduler",
    "/accounts/login/",
    "/admin/",
    "/admin/login/",
    "/admin/orders/order/",
    "/api/docs/",
    "/api-auth/login/",
    "/api/order-scheduler/orders?format=api",
    "/api/order-scheduler/status",
    "/healthz",
    "/no-such-page",
]


def script_src(policy: str) -> str:
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return directives.get("script-src", directives["default-src"])


@pytest.fixture
def browser(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_it_sends_a_content_security_policy_without_inline_scripts_on_every_page(browser, accounts, path):
    from django.utils import timezone

    make_order(created_at=timezone.now())

    response = browser.get(path, HTTP_ACCEPT="text/html")

    assert response.status_code in (200, 302, 404), (path, response.status_code)
    policy = response["Content-Security-Policy"]
    assert script_src(policy) == "'self'" and "unsafe-inline" not in script_src(policy)
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    page = response.content.decode() if not response.streaming else ""
    # Every <script> loads a file, or is a JSON data block (never executed).
    inline = [
        tag for tag in re.findall(r"<script\b[^>]*>", page) if "src=" not in tag and "application/json" not in tag
    ]
    assert inline == [], path
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page, re.IGNORECASE), path  # no inline event handler


def test_it_serves_the_api_docs_start_up_script_as_a_file(browser):
    page = browser.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)

    init = [src for src in scripts if "script=" in src]
    assert len(init) == 1
    response = browser.get(init[0].replace("&amp;", "&"))
    assert response.status_code == 200 and "SwaggerUIBundle" in response.content.decode()


def test_it_puts_the_security_headers_on_a_413(client, settings):
    response = client.post("/api/order-scheduler/submit", b"x", content_type="application/json",
                           CONTENT_LENGTH=str(10 * 1024 * 1024))  # fmt: skip

    assert response.status_code == 413
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_it_ends_a_signed_in_session_after_hours(admin_user, client):
    response = client.post("/accounts/login/", {"username": "root", "password": "pw-root-123"})

    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 8 * 3600
    assert client.session.get_expiry_age() == 8 * 3600


def test_it_logs_out_of_the_browsable_api_with_a_form_not_a_script(browser):
    page = browser.get("/api/order-scheduler/status", HTTP_ACCEPT="text/html").content.decode()

    assert 'action="/api-auth/logout/?next=/api/order-scheduler/status"' in page
    assert browser.post("/api-auth/logout/").status_code in (200, 302)
    assert browser.get("/api/order-scheduler/status").status_code in (401, 403)
