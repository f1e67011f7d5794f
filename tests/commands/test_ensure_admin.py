"""`manage.py ensure_admin`: the first run of `make run` creates a local admin user and an
API token and prints them once; later runs are silent."""

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from orders.models import AuditEvent


def ensure_admin(*args: str) -> str:
    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_creates_a_superuser_and_token_and_prints_them_once():
    out = ensure_admin()

    user = get_user_model().objects.get()
    assert (user.username, user.is_superuser, user.is_staff) == ("admin", True, True)
    token = Token.objects.get(user=user)
    password = re.search(r"password:\s+(\S+)", out).group(1)
    assert authenticate(username="admin", password=password) == user
    assert re.search(r"API token:\s+(\S+)", out).group(1) == token.key
    assert out.count(token.key) == 2  # the token line and the curl example
    assert out.count(password) == 1


@pytest.mark.django_db
def test_it_prints_nothing_and_creates_nothing_the_second_time():
    ensure_admin()
    users = list(get_user_model().objects.values())
    tokens = list(Token.objects.values())

    out = ensure_admin()

    assert out == ""
    assert list(get_user_model().objects.values()) == users
    assert list(Token.objects.values()) == tokens


@pytest.mark.django_db
def test_it_leaves_an_existing_superuser_alone():
    get_user_model().objects.create_superuser("root", "", "pw-root-123")

    assert ensure_admin() == ""
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["root"]
    assert Token.objects.count() == 0


@pytest.mark.django_db
def test_it_takes_another_username():
    ensure_admin("--username", "desk")

    assert get_user_model().objects.get(is_superuser=True).username == "desk"


@pytest.mark.django_db
def test_it_refuses_in_one_line_when_the_username_belongs_to_an_ordinary_user():
    get_user_model().objects.create_user("admin", password="pw-admin-123")

    with pytest.raises(CommandError) as failure:
        ensure_admin()

    assert str(failure.value) == (
        "user 'admin' exists but is not a superuser; pass --username NAME or run createsuperuser"
    )
    assert get_user_model().objects.filter(is_superuser=True).count() == 0
    assert Token.objects.count() == 0


@pytest.mark.django_db
def test_it_records_the_admin_it_creates_in_the_audit_trail():
    ensure_admin()
    ensure_admin()  # the second run creates nothing, so records nothing

    event = AuditEvent.objects.get()
    assert (event.action, event.username, event.source, event.target) == (
        "token_created",
        "admin",
        "command:ensure_admin",
        "admin",
    )
    assert event.changes == {"role": "superuser", "accounts": "all"}
