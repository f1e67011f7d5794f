"""The login forms (dashboard /accounts/login/, admin /admin/login/, browsable API
/api-auth/login/): failed logins are limited per client address and per username, the
lockout answers 429 without checking any password, the audit trail keeps one event per
guessing run, and the client address honours TRUSTED_PROXY_COUNT only when set."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.models import AuditEvent

pytestmark = pytest.mark.django_db
FORMS = ["/accounts/login/", "/admin/login/", "/api-auth/login/"]
LIMIT = 5


@pytest.fixture
def victim(db):
    return get_user_model().objects.create_user("victim", password="the-right-password-1", is_staff=True)


def attempt(url: str, username: str, password: str, address: str = "127.0.0.1", **meta):
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password}, **meta)


@pytest.mark.parametrize("url", FORMS)
def test_it_locks_out_a_guessing_run_on_every_login_form(victim, url):
    guesses = [attempt(url, "victim", f"guess-{n}") for n in range(LIMIT + 25)]
    right = attempt(url, "victim", "the-right-password-1")

    assert [g.status_code for g in guesses[: LIMIT - 1]] == [200] * (LIMIT - 1)  # the form again, with an error
    assert {g.status_code for g in guesses[LIMIT:]} == {429}
    assert "Sign-in refused after 5 failed attempts." in guesses[-1].content.decode()
    assert right.status_code == 429  # even the right password is not checked now
    events = list(
        AuditEvent.objects.filter(action__startswith="login").order_by("id").values_list("action", "target", "source")
    )
    assert events == [("login_failed", "victim", "127.0.0.1"), ("login_locked_out", "victim", "127.0.0.1")]


def test_it_limits_per_username_across_addresses(victim):
    for n in range(LIMIT):
        attempt("/accounts/login/", "victim", "wrong", address=f"10.0.0.{n + 1}")

    elsewhere = attempt("/accounts/login/", "victim", "the-right-password-1", address="10.0.9.9")
    other_user = attempt("/accounts/login/", "someone", "wrong", address="10.0.9.9")

    assert elsewhere.status_code == 429
    assert other_user.status_code == 200  # that address is not locked; only the username is


def test_it_limits_per_address_across_usernames(victim):
    for n in range(LIMIT):
        attempt("/admin/login/", f"user{n}", "wrong", address="10.1.1.1")

    same_address = attempt("/admin/login/", "victim", "the-right-password-1", address="10.1.1.1")
    other_address = attempt("/admin/login/", "victim", "the-right-password-1", address="10.2.2.2")

    assert same_address.status_code == 429
    assert other_address.status_code == 302  # logged in: the username itself was never guessed
    # One per username tried; the last failure is the lockout's own event.
    assert AuditEvent.objects.filter(action="login_failed").count() == LIMIT - 1
    assert AuditEvent.objects.filter(action="login_locked_out", source="10.1.1.1").count() == 1


def test_it_lets_a_successful_login_through_below_the_limit(victim):
    for _ in range(LIMIT - 1):
        attempt("/accounts/login/", "victim", "wrong")

    response = attempt("/accounts/login/", "victim", "the-right-password-1")

    assert response.status_code == 302 and response["Location"] == "/order-scheduler"


def test_it_ignores_x_forwarded_for_unless_proxies_are_trusted(victim, settings):
    for n in range(LIMIT):
        attempt("/accounts/login/", f"u{n}", "wrong", address="192.0.2.10", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")

    locked = attempt("/accounts/login/", "victim", "the-right-password-1", address="192.0.2.10",
                     HTTP_X_FORWARDED_FOR="198.51.100.99")  # fmt: skip

    assert locked.status_code == 429  # all came from the proxy's address as far as anyone knows
    assert set(AuditEvent.objects.filter(action="login_failed").values_list("source", flat=True)) == {"192.0.2.10"}


def test_it_takes_the_client_address_from_a_trusted_proxy(victim, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(LIMIT):  # one client behind the proxy, spoofing a different address each time
        attempt("/accounts/login/", f"u{n}", "wrong", address="192.0.2.10",
                HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.7")  # fmt: skip

    same_client = attempt("/accounts/login/", "victim", "the-right-password-1", address="192.0.2.10",
                          HTTP_X_FORWARDED_FOR="203.0.113.7")  # fmt: skip
    other_client = attempt("/accounts/login/", "victim", "the-right-password-1", address="192.0.2.10",
                           HTTP_X_FORWARDED_FOR="203.0.113.8")  # fmt: skip

    assert same_client.status_code == 429 and other_client.status_code == 302
    assert set(AuditEvent.objects.filter(action="login_failed").values_list("source", flat=True)) == {"203.0.113.7"}


@pytest.mark.django_db
def test_it_audits_a_failed_login_without_the_password(client, accounts):
    client.post("/accounts/login/", {"username": "mallory", "password": "hunter2-SECRET"})

    event = AuditEvent.objects.get(action="login_failed")
    assert event.target == "mallory"
    assert event.source == "127.0.0.1"
    assert "hunter2" not in json.dumps(event.changes)
