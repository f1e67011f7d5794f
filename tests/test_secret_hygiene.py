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
from orders.services.submit import order_submit
from tests.fakes.okx import FakeOKX
from tests.fakes.telegram import FakeTelegram

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
    refused = order_submit(items=[{**item, "account_id": "okx_good"}]).orders[0]
    good = order_submit(items=[{**item, "account_id": "okx_good"}]).orders[0]
    wrong = order_submit(items=[{**item, "account_id": "okx_wrong"}]).orders[0]
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
