"""`manage.py create_api_user`: access is given explicitly (grants or --all-accounts),
never implied by leaving the accounts out."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import AccountGrant, AuditEvent
from tests.helpers import submit

pytestmark = pytest.mark.django_db
ORDER = {"symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": "0.001"}


def create(*args) -> str:
    out = io.StringIO()
    call_command("create_api_user", *args, stdout=out)
    return out.getvalue()


def token_client(output: str) -> APIClient:
    key = output.rsplit(": ", 1)[1].strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_it_refuses_a_user_without_accounts_or_all_accounts_in_one_line(accounts):
    audited = AuditEvent.objects.count()
    with pytest.raises(CommandError) as refused:
        create("nobody", "--role", "trader")

    assert str(refused.value) == "give --accounts a,b (the accounts the user may use) or --all-accounts"
    assert "\n" not in str(refused.value)
    assert not get_user_model().objects.filter(username="nobody").exists()
    assert Token.objects.count() == 0 and AuditEvent.objects.count() == audited


def test_it_refuses_both_accounts_and_all_accounts(accounts):
    with pytest.raises(CommandError):
        create("both", "--role", "trader", "--accounts", "account_main", "--all-accounts")

    assert not get_user_model().objects.filter(username="both").exists()


def test_it_gives_every_account_only_with_all_accounts(accounts):
    output = create("desk", "--role", "viewer", "--all-accounts")
    for account in ("account_main", "account_poit_main"):
        submit(account=account)

    orders = token_client(output).get("/api/order-scheduler/orders").json()["orders"]

    assert "created viewer desk (all accounts)" in output
    assert {o["account_id"] for o in orders} == {"account_main", "account_poit_main"}
    assert AccountGrant.objects.count() == 0
    assert get_user_model().objects.get(username="desk").has_perm("orders.all_accounts")


def test_it_limits_a_user_to_the_accounts_given(accounts):
    output = create("bot", "--role", "trader", "--accounts", "account_main")
    client = token_client(output)

    own = client.post("/api/order-scheduler/submit", {**ORDER, "account_id": "account_main"}, format="json")
    foreign = client.post("/api/order-scheduler/submit", {**ORDER, "account_id": "account_poit_main"}, format="json")

    assert "created trader bot (account_main)" in output
    assert (own.status_code, foreign.status_code) == (201, 403)
    assert list(AccountGrant.objects.values_list("account_id", flat=True)) == ["account_main"]
    assert not get_user_model().objects.get(username="bot").has_perm("orders.all_accounts")
