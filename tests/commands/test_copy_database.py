"""`manage.py copy_database --from URL`: a SQLite installation's data into the configured
database (PostgreSQL in the scale-out leg of the suite), everything or nothing."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.core.serializers.json import DjangoJSONEncoder
from django_q.models import OrmQ, Schedule
from rest_framework.authtoken.models import Token

from orders.models import Account, Instrument, Order, PaperOrder
from orders.services.submit import order_submit
from tests.conftest import BASE_DIR
from tests.helpers import submit

pytestmark = pytest.mark.e2e

# What "everything arrived" compares: every row of these tables, all columns, as the ORM
# reads them, in the source and then in the target.
SNAPSHOT = """
import json
from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
models = [apps.get_model(label) for label in {labels!r}]
print(json.dumps({{m._meta.label: list(m.objects.order_by("pk").values()) for m in models}}, cls=DjangoJSONEncoder))
"""
LABELS = ["orders.Order", "orders.Account", "orders.PaperOrder", "orders.Instrument", "auth.User", "auth.Group",
          "authtoken.Token", "contenttypes.ContentType", "auth.Permission", "django_q.Schedule"]  # fmt: skip

# A working installation in miniature: users with a group and a permission, API tokens,
# the test accounts, 250 orders in every state (one a retry of another), what the paper
# venue received, market data, and wake-up calls still in the ORM broker's queue.
FILL = """
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from orders.models import Instrument, Order, OrderStatus, PaperOrder
from orders.services.accounts import sync_accounts
from orders.services.lifecycle import order_retry
from orders.services.submit import order_submit

User = get_user_model()
root = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
desk = User.objects.create_user("desk", password="pw-desk-123")
traders = Group.objects.create(name="traders")
traders.permissions.add(Permission.objects.get(codename="view_order"))
desk.groups.add(traders)
desk.user_permissions.add(Permission.objects.get(codename="change_order"))
desk.user_permissions.add(Permission.objects.get(codename="all_accounts"))  # access fails closed
Token.objects.create(user=root)
Token.objects.create(user=desk)
sync_accounts()
accounts = ["account_main", "account_poit_main", "account_hedge", "account_spot"]
items = [{"account_id": accounts[n % 4], "symbol": "BTC/USDT" if n % 4 == 3 else "BTC/USDT:USDT",
          "side": "buy" if n % 2 else "sell", "order_type": "market", "amount": Decimal("0.001") * (n % 7 + 1),
          "leverage": 5 if n % 4 == 2 else None, "strategy_name": f"s{n % 5}", "priority": n % 3}
         for n in range(250)]
for start in range(0, 250, 50):
    order_submit(items=items[start:start + 50], user=desk, batch=True)
orders = list(Order.objects.order_by("id"))
for n, order in enumerate(orders[:200]):
    done = n % 4 != 3
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.SUCCESS if done else OrderStatus.FAILED, order_id=f"7010{n}" if done else None,
        filled_amount=order.amount if done else None, average_price=Decimal("65000.1") if done else None,
        fee=Decimal("-0.0000325") if done else None, fee_currency="USDT" if done else "",
        error_code="" if done else "51008", error_message="" if done else "Insufficient balance",
        started_at=timezone.now(), finished_at=timezone.now(), attempts=1)
    if done:
        PaperOrder.objects.create(account_id=order.account_id, client_order_id=order.client_order_id,
                                  exchange_order_id=f"P{n}", symbol=order.symbol, side=order.side,
                                  order_type=order.order_type, amount=order.amount, price=Decimal("65000.1"),
                                  state="filled", started=1.5 + n, finished=1.6 + n, worker_pid=42)
order_retry(request_id=orders[3].request_id, user=root)
Instrument.objects.create(venue="okx:demo:www.okx.com", symbol="BTC/USDT:USDT", min_amount=Decimal("0.001"),
                          amount_step=Decimal("0.001"), contract_size=Decimal("0.01"))
"""


def manage(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "scheduler_site.settings"}
    env.pop("REDIS_URL", None)  # an embedded installation: ORM broker and database cache
    result = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot_in_target() -> dict:
    from django.apps import apps

    data = {label: list(apps.get_model(label).objects.order_by("pk").values()) for label in LABELS}
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A filled SQLite installation: its URL and a snapshot of its rows."""
    path = tmp_path_factory.mktemp("source") / "db.sqlite3"
    url = f"sqlite:///{path}"
    manage(url, "migrate", "--noinput", "-v", "0")
    manage(url, "createcachetable")
    manage(url, "shell", "-v", "0", "-c", FILL)
    rows = json.loads(manage(url, "shell", "-v", "0", "-c", SNAPSHOT.format(labels=LABELS)))
    queued_wakeups = int(
        manage(url, "shell", "-v", "0", "-c", "from django_q.models import OrmQ; print(OrmQ.objects.count())")
    )
    return {"url": url, "rows": rows, "queued_wakeups": queued_wakeups}


def test_it_copies_every_row_of_a_sqlite_installation_and_verifies_the_counts(source, transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # as the source used
    out = StringIO()

    call_command("copy_database", "--from", source["url"], "--chunk-size", "100", stdout=out)

    assert snapshot_in_target() == source["rows"]
    assert len(source["rows"]["orders.Order"]) == 251
    retry = Order.objects.get(retry_of__isnull=False)
    assert retry.retry_of.error_code == "51008"
    desk = get_user_model().objects.get(username="desk")
    assert desk.check_password("pw-desk-123")
    assert desk.has_perm("orders.view_order") and desk.has_perm("orders.change_order")
    assert Token.objects.get(user=desk).key == next(
        t["key"] for t in source["rows"]["authtoken.Token"] if t["user_id"] == desk.pk
    )
    # The ORM broker's pending wake-up calls are not data; recovery wakes the accounts.
    assert source["queued_wakeups"] > 0 and OrmQ.objects.count() == 0
    assert "copied and verified" in out.getvalue() and "orders_order: 251" in out.getvalue()
    # New rows continue after the copied ids.
    order = submit(amount=1)
    assert order.pk > max(row["id"] for row in source["rows"]["orders.Order"])
    assert get_user_model().objects.create_user("new").pk > desk.pk


def test_it_refuses_a_target_that_holds_data_and_changes_nothing(source, transactional_db, accounts):
    # The service, not tests.helpers.submit: the helper's API user would be data too.
    order_submit(items=[{"account_id": "account_main", "symbol": "BTC/USDT:USDT", "side": "buy",
                         "order_type": "market", "amount": 1}])  # fmt: skip
    before = snapshot_in_target()

    with pytest.raises(CommandError, match=r"the target database is not empty \(orders_account has 5 rows\)"):
        call_command("copy_database", "--from", source["url"])

    assert snapshot_in_target() == before


def test_it_refuses_a_source_at_another_migration_state(tmp_path, transactional_db):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    manage(url, "migrate", "--noinput", "-v", "0")
    from django.db.migrations.loader import MigrationLoader

    *_, previous, latest = sorted(name for app, name in MigrationLoader(None).disk_migrations if app == "orders")
    manage(url, "migrate", "orders", previous, "--noinput", "-v", "0")  # as an older version left it
    before = (Order.objects.count(), ContentType.objects.count(), Permission.objects.count(), Schedule.objects.count())

    with pytest.raises(
        CommandError,
        match=f"another migration state than the target; the source lacks orders.{latest}: ",
    ):
        call_command("copy_database", "--from", url)

    assert (Order.objects.count(), ContentType.objects.count(), Permission.objects.count(),
            Schedule.objects.count()) == before  # fmt: skip


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent/db.sqlite3", "no SQLite file at /nonexistent/db.sqlite3"),
        ("mysql-ish:/x", "--from is not a valid database URL"),
    ],
)
def test_it_refuses_a_source_that_is_not_there(db, url, message):
    with pytest.raises(CommandError, match=message):
        call_command("copy_database", "--from", url)

    assert not Account.objects.exists() and not Instrument.objects.exists() and not PaperOrder.objects.exists()
