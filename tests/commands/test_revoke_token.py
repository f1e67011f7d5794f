"""The revoke_token command: the API refuses the old token at once; --rotate prints a new one."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import AuditEvent
from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db


def revoke(*args) -> str:
    out = StringIO()
    call_command("revoke_token", *args, stdout=out)
    return out.getvalue()


def status_with(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/order-scheduler/status").status_code


@pytest.fixture
def alice(accounts):
    user = user_with_role("alice", "trader")
    return user, Token.objects.create(user=user).key


def test_it_revokes_the_token_which_the_api_then_refuses(alice):
    user, key = alice
    assert status_with(key) == 200

    output = revoke("alice")

    assert output == "revoked the API token of alice\n"
    assert not Token.objects.filter(user=user).exists()
    assert status_with(key) == 401
    event = AuditEvent.objects.get(action="token_revoked")
    assert (event.target, event.source) == ("alice", "command:revoke_token")
    assert event.changes == {"revoked": True}  # a key without "token": not masked as a secret


def test_it_rotates_the_token_and_prints_the_new_one_once(alice):
    user, old = alice

    output = revoke("alice", "--rotate")

    new = Token.objects.get(user=user).key
    assert output == f"rotated the API token of alice\nnew API token (shown once): {new}\n"
    assert new != old
    assert (status_with(old), status_with(new)) == (401, 200)


def test_it_says_so_when_the_user_had_no_token(alice):
    user, _ = alice
    Token.objects.filter(user=user).delete()

    assert revoke("alice") == "alice had no API token\n"


def test_it_refuses_an_unknown_user_and_changes_nothing(alice):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        revoke("nobody")

    assert Token.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="token_").exists()
