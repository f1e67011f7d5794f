"""orders.services.access: which accounts a user reaches (failing closed), who may pause
or resume what, and the data migration that keeps existing users' access on upgrade."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.models import Account, AccountGrant, Order
from orders.services import access
from tests.conftest import user_with_role
from tests.helpers import submit

pytestmark = pytest.mark.django_db
ORDER = {"symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": "0.001"}


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def reached(user) -> dict:
    """What the user's API shows and lets them do, with one order on each of two accounts."""
    client = client_for(user)
    status = client.get("/api/order-scheduler/status").json()["status"]
    return {
        "orders": {o["account_id"] for o in client.get("/api/order-scheduler/orders").json()["orders"]},
        "accounts": {a["id"] for a in status["accounts"]},
        "stats": client.get("/api/order-scheduler/stats").json()["stats"]["today"]["total"],
        "csv lines": len(client.get("/api/order-scheduler/orders.csv").getvalue().splitlines()) - 1,
        "submit": client.post(
            "/api/order-scheduler/submit", {**ORDER, "account_id": "account_poit_main"}, format="json"
        ).status_code,
    }


@pytest.fixture
def two_orders(accounts):
    for account in ("account_main", "account_poit_main"):
        submit(account=account)


NOTHING = {"orders": set(), "accounts": set(), "stats": 0, "csv lines": 0, "submit": 403}


def test_it_gives_a_user_without_grants_nothing(two_orders):
    user = user_with_role("nog", "trader", accounts=[])

    assert access.allowed_account_ids(user) == set()
    assert reached(user) == NOTHING
    assert Order.objects.count() == 2


def test_it_gives_nothing_once_the_last_grant_is_removed(two_orders):
    user = user_with_role("ex", "trader", accounts=["account_main"])
    AccountGrant.objects.filter(user=user).delete()

    assert reached(get_user_model().objects.get(pk=user.pk)) == NOTHING
    assert Order.objects.count() == 2


def test_it_gives_nothing_once_the_only_account_is_deleted(accounts):
    Account.objects.create(id="account_gone", name="Gone", mode="paper")
    submit()
    user = user_with_role("orphan", "trader", accounts=["account_gone"])
    Account.objects.filter(pk="account_gone").delete()  # the grant cascades

    assert AccountGrant.objects.filter(user=user).count() == 0
    assert reached(get_user_model().objects.get(pk=user.pk)) == NOTHING


def test_it_gives_every_account_to_the_all_accounts_right_and_superusers(two_orders):
    desk = user_with_role("desk", "trader")  # accounts=None: the all-accounts right
    root = get_user_model().objects.create_superuser("root2", "", "pw-root2-123")

    for user in (desk, root):
        seen = reached(user)
        assert seen["orders"] == {"account_main", "account_poit_main"}
        assert seen["accounts"] == set(Account.objects.filter(in_config=True).values_list("pk", flat=True))
        assert seen["submit"] == 201


@pytest.mark.parametrize(
    "role, grants, own, other, everything",
    [
        ("viewer", None, False, False, False),
        ("trader", None, False, False, False),
        ("admin", None, True, True, True),
        ("admin", ["account_main"], True, False, False),
        ("admin", [], False, False, False),
    ],
)
def test_it_lets_operators_pause_only_what_they_reach(accounts, role, grants, own, other, everything):
    user = user_with_role(f"{role}-{grants}", role, accounts=grants)

    decided = (
        access.may_control(user, "account_main"),
        access.may_control(user, "account_poit_main"),
        access.may_control(user, None),
    )

    assert decided == (own, other, everything)
    assert access.may_control(None, None)  # the system: a command run on the host


def test_it_keeps_existing_users_access_through_the_data_migration(two_orders):
    migration = importlib.import_module("orders.migrations.0011_all_accounts")
    User = get_user_model()
    legacy = User.objects.create_user("legacy", password="pw-legacy-123")
    legacy.groups.add(apps.get_model("auth", "Group").objects.get(name="viewer"))
    limited = user_with_role("limited", "viewer", accounts=["account_main"])
    root = User.objects.create_superuser("root3", "", "pw-root3-123")
    assert reached(legacy)["orders"] == set()  # fails closed until the migration runs

    migration.keep_existing_access(apps, None)

    legacy, limited, root = (User.objects.get(pk=u.pk) for u in (legacy, limited, root))
    assert legacy.has_perm("orders.all_accounts") and not limited.has_perm("orders.all_accounts")
    assert not root.user_permissions.exists()
    assert reached(legacy)["orders"] == {"account_main", "account_poit_main"}
    assert reached(limited)["orders"] == {"account_main"}
