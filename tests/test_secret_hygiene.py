"""Secrets set through the environment never appear in anything the service produces:
responses, pages, the admin, logs, the journal, exports, the database, audit records,
command output, or exception texts of failed orders."""

import io
import json
import logging
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from orders.models import Account, Order, OrderStatus
from orders.services import drain, notifications, tracking
from tests.fakes.okx import FakeOKX
from tests.fakes.telegram import FakeTelegram
from tests.helpers import submit

MARK = "ZZSECRETZZ"
KEY, SECRET, PASSPHRASE = f"key-{MARK}-1", f"secret-{MARK}-2", f"pass-{MARK}-3"
BOT_TOKEN = "987654321:ZZSECRETZZ-bot-token_abcdefghijkl"


@pytest.fixture
def world(db, tmp_path, monkeypatch, settings):
    okx = FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True).start()
    telegram = FakeTelegram(token=BOT_TOKEN).start()
    for name, value in (("H_KEY", KEY), ("H_SECRET", SECRET), ("H_PASS", PASSPHRASE), ("W_KEY", KEY),
                        ("W_SECRET", f"wrong-{MARK}"), ("W_PASS", PASSPHRASE)):  # fmt: skip
        monkeypatch.setenv(name, value)
    entries = [
        {"id": "okx_good", "mode": "demo", "base_url": okx.base_url, "api_key_env": "H_KEY", "secret_env": "H_SECRET",
         "passphrase_env": "H_PASS", "default_leverage": 5, "options": {"timeout_ms": 2000}},
        {"id": "okx_wrong", "mode": "demo", "base_url": okx.base_url, "api_key_env": "W_KEY", "secret_env": "W_SECRET",
         "passphrase_env": "W_PASS", "options": {"timeout_ms": 2000}},
        {"id": "okx_missing", "mode": "live", "api_key_env": "MISSING_KEY", "secret_env": "MISSING_SECRET",
         "passphrase_env": "MISSING_PASS"},
    ]  # fmt: skip
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps({"accounts": entries}))
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ACCOUNTS_FILE": accounts_file}
    settings.TELEGRAM = {**settings.TELEGRAM, "BOT_TOKEN": BOT_TOKEN, "CHAT_ID": "-100123",
                         "API_BASE_URL": telegram.base_url, "GATHER_SECONDS": 0.0, "BURST_WINDOW": 0.0}  # fmt: skip
    yield okx, telegram
    okx.stop()
    telegram.stop()


def test_it_never_lets_a_secret_out(world, api, admin_user, client, caplog, settings, tmp_path):
    okx, telegram = world
    caplog.set_level(logging.DEBUG)
    produced: list[str] = []

    out, err = io.StringIO(), io.StringIO()
    call_command("sync_accounts", stdout=out, stderr=err)
    produced += [out.getvalue(), err.getvalue()]

    item = {"symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": Decimal("0.001")}
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "BATCH_SIZE": 1}  # one order per request
    okx.inject("insufficient_funds", path_suffix="trade/batch-orders", times=1)  # meets the first order sent
    refused = submit(account="okx_good")
    good = submit(account="okx_good")
    wrong = submit(account="okx_wrong")
    drain.drain_account(account_id="okx_good")
    drain.drain_account(account_id="okx_wrong")
    tracking.track_open_orders(account_id="okx_good")
    notifications.send_pending(flush=True)

    statuses = dict(Order.objects.values_list("request_id", "status"))
    assert statuses[good.request_id] == OrderStatus.SUCCESS
    assert statuses[refused.request_id] == OrderStatus.FAILED
    assert statuses[wrong.request_id] == OrderStatus.FAILED  # credentials refused: fails, account paused
    assert Account.objects.get(pk="okx_wrong").paused
    assert Account.objects.get(pk="okx_missing").config_error  # names the variables only
    assert telegram.messages, "notifications were delivered"

    # API responses.
    for path in ["/api/order-scheduler/status", "/api/order-scheduler/orders", "/api/order-scheduler/stats",
                 f"/api/order-scheduler/orders/{wrong.request_id}", "/api/schema/"]:  # fmt: skip
        response = api.get(path)
        assert response.status_code == 200, path
        produced.append(response.content.decode())
    produced.append(api.post("/api/order-scheduler/submit", {**item, "amount": 0.001, "account_id": "okx_missing"},
                             format="json").content.decode())  # fmt: skip
    # The admin, as a superuser sees it.
    client.force_login(admin_user)
    for path in ["/admin/orders/account/", "/admin/orders/account/okx_good/change/", "/admin/orders/account/okx_wrong/change/",
                 "/admin/orders/order/", f"/admin/orders/order/{wrong.pk}/change/", "/admin/orders/auditevent/",
                 "/order-scheduler", "/api/order-scheduler/orders.csv",
                 "/admin/orders/notification/"]:  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        produced.append(response.getvalue().decode())  # whole body, streamed or not
    # Exports, the journal, the whole database, the logs, what Telegram received.
    export = tmp_path / "export.jsonl"
    call_command("export_orders", "--output", str(export))
    produced.append(export.read_text())
    produced += [p.read_text() for p in settings.ORDER_SCHEDULER["LOG_DIR"].glob("*.jsonl")]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            produced.append(repr(cursor.fetchall()))
    produced.append(caplog.text)
    produced += [m.text for m in telegram.messages]

    leaks = [text for text in produced if MARK in text]
    assert not leaks, f"a secret leaked: {leaks[0][:500]}"
    assert "OK-ACCESS" not in caplog.text


DB_PASSWORD, REDIS_PASSWORD, ALPHA = f"db-{MARK}-pw", f"redis-{MARK}-pw", f"alpha-{MARK}-value"


def accounts_naming(tmp_path, **entry) -> str:
    """An accounts file whose one account names DESK_ALPHA (a name that does not look
    secret) for its API key."""
    path = tmp_path / "accounts.json"
    account = {"id": "desk", "mode": "live", "api_key_env": "DESK_ALPHA", "secret_env": "DESK_BETA",
               "passphrase_env": "DESK_GAMMA", **entry}  # fmt: skip
    path.write_text(json.dumps({"accounts": [account]}))
    return str(path)


def test_it_masks_database_and_redis_urls_and_secrets_on_the_debug_error_page(db, settings, monkeypatch, tmp_path):
    from django.test import Client

    monkeypatch.setenv("DESK_ALPHA", ALPHA)
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ACCOUNTS_FILE": accounts_naming(tmp_path)}
    settings.DEBUG = True
    settings.ROOT_URLCONF = "tests.urls_failing"
    settings.DATABASE_URL = f"postgres://orders:{DB_PASSWORD}@db.internal:5432/orders"
    settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"

    html = Client(raise_request_exception=False).get("/boom", HTTP_ACCEPT="text/html")
    text = Client(raise_request_exception=False).get("/boom", HTTP_ACCEPT="text/plain")

    assert html.status_code == text.status_code == 500
    for page in (html.content.decode(), text.content.decode()):
        assert "RuntimeError" in page and "could not connect with ********" in page
        assert MARK not in page, page[page.index(MARK) - 300 : page.index(MARK) + 100]
        assert "db.internal" not in page and "redis.internal" not in page  # the whole URL is hidden


def test_it_scrubs_every_configured_secret_from_every_log_record(tmp_path):
    """The real logging configuration in a real process: message, arguments, traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import BASE_DIR

    script = (
        "import logging, os\n"
        "log = logging.getLogger('orders.test')\n"
        "log.warning('key is %s', os.environ['DESK_ALPHA'])\n"
        "log.warning('token ' + os.environ['TELEGRAM_BOT_TOKEN'])\n"
        "try:\n"
        "    raise ValueError('refused ' + os.environ['DESK_ALPHA'] + ' on ' + os.environ['DATABASE_URL'])\n"
        "except ValueError:\n"
        "    log.exception('failed')\n"
        "log.warning('stack', stack_info=True, extra={'x': os.environ['DESK_ALPHA']})\n"
        "print('done')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scheduler_site.settings", "LOG_LEVEL": "INFO",
           "DESK_ALPHA": ALPHA, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_CHAT_ID": "-100123",
           "ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_naming(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'log.sqlite3'}"}  # fmt: skip

    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "shell", "--no-imports", "-c", script],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0 and "done" in result.stdout, result.stderr
    assert "key is ********" in result.stderr and "token ********" in result.stderr
    assert "Traceback" in result.stderr and "ValueError: refused ********" in result.stderr
    assert MARK not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "entry",
    [
        {"base_url": "http://www.okx.com"},
        {"base_url": "https://okx.example.net"},
        {"base_url": "https://www.okx.com.example.net"},
        {"hostname": "okx.example.net"},
    ],
    ids=["plain-http", "other-host", "lookalike-host", "other-hostname"],
)
def test_it_refuses_an_endpoint_other_than_https_on_okx_unless_allowed(db, settings, tmp_path, entry, monkeypatch):
    from orders.services.accounts import sync_accounts

    for name in ("DESK_ALPHA", "DESK_BETA", "DESK_GAMMA"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    path = accounts_naming(tmp_path, **entry)
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ALLOW_INSECURE_BASE_URL": False}

    refused = sync_accounts(path=path)

    assert (
        list(refused.problems) == ["desk"] and "ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL=1" in refused.problems["desk"]
    )
    assert "example.net" not in refused.problems["desk"]  # the URL itself is never echoed
    assert not Account.objects.filter(pk="desk").exists()

    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ALLOW_INSECURE_BASE_URL": True}
    assert sync_accounts(path=path).problems == {}
    assert Account.objects.filter(pk="desk").exists()


def test_it_accepts_okx_over_https_and_says_when_an_account_is_not(db, settings, tmp_path, api, monkeypatch):
    from orders.services.accounts import sync_accounts

    for name in ("DESK_ALPHA", "DESK_BETA", "DESK_GAMMA"):
        monkeypatch.setenv(name, f"{name.lower()}-value")
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ALLOW_INSECURE_BASE_URL": False}
    assert sync_accounts(path=accounts_naming(tmp_path, base_url="https://eea.okx.com")).problems == {}
    secure = api.get("/api/order-scheduler/status").json()["status"]["accounts"]

    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ALLOW_INSECURE_BASE_URL": True}
    sync_accounts(path=accounts_naming(tmp_path, base_url="http://127.0.0.1:8443"))
    insecure = api.get("/api/order-scheduler/status").json()["status"]["accounts"]

    assert [(a["id"], a["insecure_endpoint"]) for a in secure] == [("desk", False)]
    assert [(a["id"], a["insecure_endpoint"]) for a in insecure] == [("desk", True)]
