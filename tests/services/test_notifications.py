"""Telegram notifications (orders.services.notifications) against the local Bot API fake.

Burst and pacing rules are driven by a controlled clock: `time_passes` moves the
recorded times back instead of the test waiting. Only the 429 and back-off tests wait
for real time, and they measure it on the fake's own receive times.
"""

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import traceback
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import F
from django.forms.models import model_to_dict
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from orders.api.serializers import OrderSubmitSerializer
from orders.models import Notification, NotificationChannel, NotificationEvent, Order, OrderStatus, PaperOrder
from orders.services import drain, notifications
from orders.services.accounts import sync_accounts
from orders.services.submit import order_submit
from orders.telegram import BotConfig, TelegramError, send_message
from tests.conftest import BASE_DIR, wait_for
from tests.fakes.telegram import FakeTelegram
from tests.helpers import submit

CHAT_ID = "-1009876543210"


@pytest.fixture
def fake():
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def telegram(db, settings, fake):
    """Telegram configured against the fake; no gathering or window unless a test asks."""
    settings.TELEGRAM = {
        **settings.TELEGRAM,
        "BOT_TOKEN": fake.token,
        "CHAT_ID": CHAT_ID,
        "API_BASE_URL": fake.base_url,
        "TIMEOUT": 2.0,
        "GATHER_SECONDS": 0.0,
        "BURST_WINDOW": 0.0,
        "RETRY_SECONDS": 0.2,
        "MAX_ATTEMPTS": 5,
    }
    return fake


def configure(settings, **changes):
    settings.TELEGRAM = {**settings.TELEGRAM, **changes}


def set_level(settings, event: str, level: str):
    configure(settings, EVENTS={**settings.TELEGRAM["EVENTS"], event: level})


def time_passes(seconds: float) -> None:
    """The controlled clock: everything recorded happened `seconds` earlier."""
    delta = timedelta(seconds=seconds)
    Notification.objects.update(created_at=F("created_at") - delta)
    NotificationChannel.objects.update(last_sent_at=F("last_sent_at") - delta, not_before=F("not_before") - delta)


# The order most of these tests submit: a spot sell on account_spot.
SPOT_SELL = {"account": "account_spot", "symbol": "BTC/USDT", "side": "sell"}


def failed_order(n: int, *, account: str = "account_main", code: str = "rate_limit") -> Order:
    """An order as execution hands it over when it failed (not saved: only its fields matter)."""
    return Order(
        request_id=f"R{n}",
        client_order_id=f"sc{n}",
        account_id=account,
        symbol="BTC/USDT:USDT",
        side="buy",
        order_type="market",
        amount=Decimal("0.001"),
        status=OrderStatus.FAILED,
        error_code=code,
        error_message="Too many requests",
        finished_at=timezone.now(),
    )


# --- Delivery and formatting --------------------------------------------------------------


def test_it_delivers_a_failed_order_as_one_html_message_in_the_configured_time_zone(telegram, settings, accounts):
    settings.TIME_ZONE = "Asia/Shanghai"
    order = submit(**SPOT_SELL, amount="20", strategy_name="grid_1")
    drain.drain_account(account_id="account_spot")
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED

    assert notifications.send_pending() == 1

    [message] = telegram.messages
    assert message.chat_id == CHAT_ID
    assert message.parse_mode == "HTML"
    assert message.disable_notification is False
    local = order.finished_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    assert message.plain.splitlines() == [
        "❌ Order failed · account_spot",
        f"{order.request_id} sell 20 BTC/USDT market",
        "Error paper_insufficient_funds: Insufficient balance: paper account allows at most 10 per order",
        f"Strategy grid_1 · finished {local} CST",
    ]
    assert f"<code>{order.request_id}</code>" in message.text
    row = Notification.objects.get()
    assert (row.event, row.attempts, row.last_error) == ("order_failed", 0, "")
    assert row.sent_at is not None


def test_it_escapes_what_telegram_would_read_as_html(telegram):
    order = failed_order(1, code="x<y")
    order.request_id = "R<b>&1"
    order.error_message = "price < 0 & size > <max>"

    notifications.order_finished(order=order)
    assert notifications.send_pending() == 1

    [message] = telegram.messages  # the fake refuses HTML that Telegram could not parse
    assert "R<b>&1 buy 0.001 BTC/USDT:USDT market" in message.plain
    assert "Error x<y: price < 0 & size > <max>" in message.plain


def test_it_formats_a_stuck_order_and_a_paused_account_for_the_operator(telegram, settings):
    order = failed_order(7)
    notifications.order_stuck(order=order, reason="lookup failed: network_error timed out")
    assert notifications.send_pending() == 1
    notifications.account_paused(account_id="account_main", reason="Order R7 could not be reconciled")
    assert notifications.send_pending() == 1

    stuck, paused = (m.plain.splitlines() for m in telegram.messages)
    assert stuck == [
        "⚠️ Order needs an operator · account_main",
        "R7 buy 0.001 BTC/USDT:USDT market",
        "lookup failed: network_error timed out",
        "Look it up on the exchange by client order id sc7.",
    ]
    assert paused == [
        "⏸ Account paused · account_main",
        "Order R7 could not be reconciled",
        "Its orders stay queued until the account is resumed.",
    ]


def test_it_reports_a_success_only_when_asked(telegram, settings, accounts):
    order = submit(side="sell", amount="0.01")
    drain.drain_account(account_id="account_main")
    assert Notification.objects.count() == 0  # order_succeeded is off by default

    set_level(settings, "order_succeeded", "on")
    second = submit(side="sell", amount="0.01")
    drain.drain_account(account_id="account_main")
    assert notifications.send_pending() == 1

    second.refresh_from_db()
    [message] = telegram.messages
    assert message.plain.splitlines()[:3] == [
        "✅ Order filled · account_main",
        f"{second.request_id} sell 0.01 BTC/USDT:USDT market 10x",
        f"Filled 0.01 at 65000 · exchange id {second.order_id}",
    ]
    assert order.request_id not in message.plain


@pytest.mark.parametrize(
    ("level", "delivered", "silent"), [("on", True, False), ("silent", True, True), ("off", False, None)]
)
def test_it_sends_each_event_on_silent_or_not_at_all(telegram, settings, level, delivered, silent):
    set_level(settings, "account_paused", level)

    row = notifications.account_paused(account_id="account_main", reason="maintenance")
    sent = notifications.send_pending()

    if delivered:
        assert sent == 1
        [message] = telegram.messages
        assert message.disable_notification is silent
        assert Notification.objects.get(pk=row.pk).silent is silent
    else:
        assert (row, sent, telegram.requests) == (None, 0, [])
        assert Notification.objects.count() == 0


def test_it_queues_nothing_when_telegram_is_not_configured(fake, settings, accounts, caplog):
    caplog.set_level(logging.INFO, logger="orders.events")
    assert settings.TELEGRAM["BOT_TOKEN"] == "" and settings.TELEGRAM["CHAT_ID"] == ""

    submit(**SPOT_SELL, amount="20")
    drain.drain_account(account_id="account_spot")
    notifications.scheduler_started()

    assert Notification.objects.count() == 0
    assert NotificationChannel.objects.count() == 0
    assert notifications.send_pending() == 0
    assert notifications.wake_if_due() is False
    assert fake.requests == []
    assert "Telegram notifications disabled" in caplog.text


def test_it_logs_at_start_that_telegram_is_on_without_token_or_chat(telegram, caplog, accounts):
    caplog.set_level(logging.INFO, logger="orders.events")

    notifications.scheduler_started()
    assert notifications.send_pending() == 1

    assert f"Telegram notifications enabled via 127.0.0.1:{telegram.port}: order_failed=on" in caplog.text
    assert telegram.token not in caplog.text and CHAT_ID not in caplog.text
    assert telegram.messages[0].plain.splitlines()[1] == "4 of 5 accounts ready · 0 queued, 0 in flight"
    assert telegram.messages[0].disable_notification is True  # scheduler_started is silent by default


# --- Pacing: bursts, 429, back-off ---------------------------------------------------------


def test_it_summarises_a_burst_of_50_failures_in_one_message(telegram, settings, accounts):
    configure(settings, GATHER_SECONDS=5, BURST_WINDOW=60)
    for _ in range(30):
        submit(**SPOT_SELL, amount="20")
    drain.drain_account(account_id="account_spot")
    for n in range(20):
        notifications.order_finished(order=failed_order(n))
        assert notifications.send_pending() == 0  # as the on-commit task: still gathering
    assert Order.objects.filter(status=OrderStatus.FAILED).count() == 30

    time_passes(6)  # no new event for GATHER_SECONDS
    assert notifications.send_pending() == 50

    [message] = telegram.messages
    lines = message.plain.splitlines()
    assert lines[0].startswith("🔔 50 notifications in the last ")
    assert lines[2:5] == [
        "❌ 50 orders failed",
        "• 30 × paper_insufficient_funds on account_spot",
        "• 20 × rate_limit on account_main",
    ]
    assert sum(line.startswith("e.g. ") for line in lines) == 3
    assert Notification.objects.filter(sent_at__isnull=True).count() == 0

    # The next failure waits for the end of the window that the summary opened.
    notifications.order_finished(order=failed_order(99))
    time_passes(6)
    assert notifications.send_pending() == 0
    time_passes(60)
    assert notifications.send_pending() == 1
    assert telegram.messages[1].plain.startswith("❌ Order failed · account_main\nR99 buy")


def test_it_sends_a_long_burst_burst_window_after_its_first_event(telegram, settings):
    configure(settings, GATHER_SECONDS=5, BURST_WINDOW=60)
    for n in range(15):
        notifications.order_finished(order=failed_order(n))
        time_passes(4)  # a new failure every 4 s: never quiet for GATHER_SECONDS
        sent = notifications.send_pending()
        if n < 14:
            assert sent == 0
    assert sent == 15  # the first one is now 60 s old
    [message] = telegram.messages
    assert "15 orders failed" in message.plain


def test_it_waits_the_retry_after_of_a_429_before_the_next_send(telegram):
    telegram.rate_limit(retry_after=1)
    notifications.account_paused(account_id="account_main", reason="maintenance")

    assert notifications.send_pending() == 0
    row = Notification.objects.get()
    assert (row.sent_at, row.attempts) == (None, 0)  # Telegram's pacing is not a failed attempt
    assert row.last_error == "HTTP 429 Too Many Requests: retry after 1"
    assert notifications.send_pending() == 0
    assert len(telegram.requests) == 1  # too early: not even tried

    wait_for(notifications.send_pending, timeout=10, message="the send after retry_after")
    first, second = telegram.requests
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 1.0
    assert Notification.objects.get().sent_at is not None


def test_it_retries_other_failures_with_a_doubling_back_off(telegram, settings):
    telegram.fail(status=502, times=2)
    notifications.account_paused(account_id="account_main", reason="maintenance")

    wait_for(notifications.send_pending, timeout=10, message="delivery after two 502s")

    first, second, third = telegram.requests
    assert (first.status, second.status, third.status) == (502, 502, 200)
    assert second.received_at - first.received_at >= 0.2
    assert third.received_at - second.received_at >= 0.4
    row = Notification.objects.get()
    assert (row.attempts, row.last_error) == (2, "HTTP 502 Bad Gateway")
    assert NotificationChannel.objects.get().failures == 0


def test_it_gives_up_on_a_notification_after_max_attempts(telegram, settings, caplog):
    configure(settings, MAX_ATTEMPTS=2, RETRY_SECONDS=0.1)
    telegram.fail(status=500, times=10)
    notifications.account_paused(account_id="account_main", reason="maintenance")

    def given_up():
        notifications.send_pending()
        return Notification.objects.filter(gave_up_at__isnull=False).exists()

    wait_for(given_up, timeout=10, message="the notification to be given up")
    time_passes(3600)
    assert notifications.send_pending() == 0
    assert [r.status for r in telegram.requests] == [500, 500]
    assert Notification.objects.get().attempts == 2
    assert "gave up on 1 Telegram notifications after 2 attempts: HTTP 500 Internal Server Error" in caplog.text


def test_it_treats_a_hanging_or_down_bot_api_as_a_failed_attempt_and_delivers_later(telegram, settings):
    configure(settings, TIMEOUT=0.5)
    notifications.account_paused(account_id="account_main", reason="maintenance")

    telegram.hang()
    assert notifications.send_pending() == 0
    assert Notification.objects.get().last_error == "no answer from the Bot API within 0.5s"
    telegram.stop()
    time_passes(3600)
    assert notifications.send_pending() == 0
    assert Notification.objects.get().last_error.startswith("cannot reach the Bot API: [Errno 111]")
    telegram.start()
    time_passes(3600)
    assert notifications.send_pending() == 1

    [message] = telegram.messages
    assert message.plain.startswith("⏸ Account paused")
    row = Notification.objects.get()
    assert row.attempts == 2 and row.sent_at is not None


def test_it_never_sends_a_row_twice_when_two_senders_run_at_once(transactional_db, telegram, settings):
    configure(settings, TIMEOUT=10)
    notifications.account_paused(account_id="account_main", reason="one")
    notifications.account_paused(account_id="account_hedge", reason="two")
    telegram.hang()
    results = []

    def first_sender():
        results.append(notifications.send_pending())
        connection.close()

    thread = threading.Thread(target=first_sender)
    thread.start()
    wait_for(lambda: telegram.hung() == 1, timeout=5, message="the first sender's request to be held")
    assert notifications.send_pending() == 0  # a second sender meanwhile
    telegram.release()
    thread.join(timeout=20)

    assert results == [2]
    assert len(telegram.requests) == 1 and len(telegram.messages) == 1
    assert Notification.objects.filter(sent_at__isnull=True).count() == 0


def test_it_flushes_pending_notifications_when_the_scheduler_stops(telegram, settings, accounts):
    configure(settings, GATHER_SECONDS=60, BURST_WINDOW=60)
    notifications.scheduler_started()
    assert notifications.send_pending() == 0  # gathering

    notifications.scheduler_stopped()  # no worker is left: sends at once

    [message] = telegram.messages
    assert message.plain.splitlines()[2:] == [
        "⏹ 1 scheduler stop",
        "• 1 × " + notifications.socket.gethostname(),
        "e.g. " + notifications.socket.gethostname(),
        "",
        "▶️ 1 scheduler start",
        "• 1 × " + notifications.socket.gethostname(),
        "e.g. " + notifications.socket.gethostname(),
    ]
    assert message.disable_notification is False  # scheduler_stopped is "on"
    assert Notification.objects.filter(sent_at__isnull=True).count() == 0


def queued_tasks() -> list[str]:
    broker = get_broker()
    funcs = []
    while tasks := broker.dequeue():
        funcs += [SignedPackage.loads(package)["func"] for _, package in tasks]
    return funcs


def test_it_only_records_and_enqueues_on_an_orders_path(
    telegram, settings, accounts, django_capture_on_commit_callbacks
):
    set_level(settings, "order_succeeded", "on")
    telegram.hang()
    submit(**SPOT_SELL, amount="20")
    submit(**SPOT_SELL, amount="1")
    queued_tasks()  # whatever was queued before

    with django_capture_on_commit_callbacks(execute=True):
        drain.drain_account(account_id="account_spot")

    assert sorted(Order.objects.values_list("status", flat=True)) == ["failed", "success"]
    assert sorted(Notification.objects.values_list("event", flat=True)) == ["order_failed", "order_succeeded"]
    assert queued_tasks() == ["orders.tasks.send_notifications"] * 2
    assert telegram.requests == []  # executing orders never waits on Telegram


def test_it_wakes_the_sender_when_a_deferred_send_is_due(telegram, settings):
    configure(settings, GATHER_SECONDS=5)
    notifications.account_paused(account_id="account_main", reason="maintenance")
    queued_tasks()

    assert notifications.wake_if_due() is False  # gathering
    time_passes(6)
    assert notifications.wake_if_due() is True
    assert queued_tasks() == ["orders.tasks.send_notifications"]


def test_it_shows_telegram_delivery_in_status_without_token_or_chat(api, telegram):
    telegram.fail(status=502)
    notifications.account_paused(account_id="account_main", reason="maintenance")
    notifications.send_pending()

    response = api.get("/api/order-scheduler/status")

    assert response.status_code == 200
    status = response.json()["status"]["telegram"]
    assert (status["enabled"], status["pending"], status["last_error"]) == (True, 1, "HTTP 502 Bad Gateway")
    assert status["next_try_at"] is not None
    assert telegram.token not in response.content.decode() and CHAT_ID not in response.content.decode()


# --- Secrets and settings ---------------------------------------------------------------------


def test_it_keeps_the_bot_token_out_of_rows_logs_status_and_exceptions(telegram, settings, caplog, api):
    caplog.set_level(logging.DEBUG)
    token = telegram.token
    configure(settings, TIMEOUT=0.5)
    errors = []

    def attempt(setup, *, bot_token=token):
        setup()
        notifications.account_paused(account_id="account_main", reason="maintenance")
        configure(settings, BOT_TOKEN=bot_token)
        notifications.send_pending()
        bot = BotConfig(token=bot_token, chat_id=CHAT_ID, api_base_url=telegram.base_url, timeout=0.5)
        try:
            send_message(bot=bot, text="x", silent=False)
        except TelegramError as exc:
            errors.append("".join(traceback.format_exception(exc)) + repr(exc))
        configure(settings, BOT_TOKEN=token)
        time_passes(3600)

    attempt(lambda: None)  # delivered
    attempt(lambda: telegram.rate_limit(retry_after=5, times=2))
    attempt(lambda: telegram.fail(status=502, times=2))
    attempt(telegram.hang)
    attempt(telegram.stop)
    attempt(telegram.start, bot_token=token + "0")  # a wrong token: 401
    attempt(lambda: None, bot_token=token + " x")  # urllib refuses the URL and quotes it

    assert len(errors) == 6
    assert any("/bot<bot-token>/sendMessage" in error for error in errors)
    produced = [
        caplog.text,
        *errors,
        api.get("/api/order-scheduler/status").content.decode(),
    ]
    produced += [json.dumps(model_to_dict(row), default=str) for row in Notification.objects.all()]
    produced += [json.dumps(model_to_dict(row), default=str) for row in NotificationChannel.objects.all()]
    assert Notification.objects.exclude(last_error="").count() >= 5
    for text in produced:
        assert token not in text


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TELEGRAM_EVENTS": "order_failed=loud"}, "TELEGRAM_EVENTS: level for order_failed must be one of on, silent"),
        ({"TELEGRAM_EVENTS": "order_exploded=on"}, "TELEGRAM_EVENTS: 'order_exploded=on' is not <event>=<level>"),
        ({"TELEGRAM_BOT_TOKEN": "123456:secret value!", "TELEGRAM_CHAT_ID": "1"}, "TELEGRAM_BOT_TOKEN must be"),
        ({"TELEGRAM_BOT_TOKEN": "123456:AAsecretValue"}, "TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID must be set"),
        (
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAsecretValue",
                "TELEGRAM_CHAT_ID": "my group",
            },
            "TELEGRAM_CHAT_ID must be",
        ),
        ({"TELEGRAM_API_BASE_URL": "ftp://example.org"}, "TELEGRAM_API_BASE_URL must be an http"),
        ({"TELEGRAM_TIMEOUT": "0"}, "TELEGRAM_TIMEOUT must be at least 0.1"),
        ({"TELEGRAM_GATHER_SECONDS": "soon"}, "TELEGRAM_GATHER_SECONDS must be a number"),
    ],
)
def test_it_refuses_to_start_with_a_bad_telegram_setting(env, variable):
    result = start_django(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: " + variable in result.stderr
    for value in env.values():
        if "secret" in value:
            assert value not in result.stderr


def test_it_knows_a_default_level_for_every_event(settings):
    assert set(settings.TELEGRAM_EVENT_DEFAULTS) == set(NotificationEvent.values)


def test_it_reads_event_levels_from_one_variable():
    env = {
        "TELEGRAM_EVENTS": " order_succeeded=silent, Scheduler_Started=OFF ,",
        "TELEGRAM_API_BASE_URL": "http://h/x/",
    }
    result = start_django(
        env, "print(json.dumps(settings.TELEGRAM['EVENTS'])); print(settings.TELEGRAM['API_BASE_URL'])"
    )
    assert result.returncode == 0, result.stderr
    events, base_url = result.stdout.splitlines()
    assert json.loads(events) == {
        "order_failed": "on",
        "order_expired": "on",
        "order_stuck": "on",
        "account_paused": "on",
        "scheduler_stopped": "on",
        "scheduler_started": "off",
        "order_succeeded": "silent",
        "order_filled": "off",
        "order_exchange_cancelled": "on",
    }
    assert base_url == "http://h/x"


def start_django(env: dict, code: str = "") -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    full.update(env, DJANGO_SETTINGS_MODULE="scheduler_site.settings")
    script = f"import json, django; django.setup(); from django.conf import settings; {code}"
    return subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, env=full, capture_output=True, text=True)


# --- End to end ---------------------------------------------------------------------------------


def order_body(account: str) -> dict:
    return {"account_id": account, "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": "0.5"}


def paper_accounts(path, *, max_amount: int) -> str:
    options = {
        "latency_ms": 20,
        "reference_prices": {"BTC/USDT:USDT": 65000},
        "max_amount": max_amount,
    }
    path.write_text(
        json.dumps({"accounts": [{"id": a, "mode": "paper", "options": options} for a in ("tg_a", "tg_b")]})
    )
    return str(path)


@pytest.mark.e2e
def test_it_executes_orders_on_time_while_telegram_hangs_or_is_down_and_delivers_later(service_factory, fake, tmp_path):
    accounts_file = paper_accounts(tmp_path / "accounts.json", max_amount=1)
    sync_accounts(path=accounts_file)
    fake.hang()
    service = service_factory(
        env={
            "ORDER_SCHEDULER_ACCOUNTS_FILE": accounts_file,
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_CHAT_ID": CHAT_ID,
            "TELEGRAM_API_BASE_URL": fake.base_url,
            "TELEGRAM_EVENTS": "order_succeeded=on",
            "TELEGRAM_TIMEOUT": "3",
            "TELEGRAM_GATHER_SECONDS": "0.2",
            "TELEGRAM_BURST_WINDOW": "1",
            "TELEGRAM_RETRY_SECONDS": "0.2",
            "TELEGRAM_MAX_ATTEMPTS": "100",
        }
    )
    service.wait_running()
    wait_for(lambda: fake.hung() >= 1, timeout=20, message="the sender to be stuck on a hanging Telegram")

    def wave(n: int, *, extra: list[dict] = ()) -> list[Order]:
        """n orders per account queued at once, run to a final status, back to back:
        never a whole TELEGRAM_TIMEOUT between one order of an account and the next."""
        bodies = [order_body(a) for _ in range(n) for a in ("tg_a", "tg_b")] + list(extra)
        serializer = OrderSubmitSerializer(data=bodies, many=True)
        assert serializer.is_valid(), serializer.errors
        orders = order_submit(items=serializer.validated_data, batch=True).orders
        wait_for(
            lambda: (
                Order.objects.filter(pk__in=[o.pk for o in orders], status__in=OrderStatus.final()).count()
                == len(orders)
            ),
            timeout=20,
            message=f"{len(orders)} orders to finish",
        )
        for account in ("tg_a", "tg_b"):
            sent = PaperOrder.objects.filter(
                account_id=account, client_order_id__in=[o.client_order_id for o in orders]
            )
            rows = list(sent.order_by("started"))
            assert len(rows) == n
            assert all(b.started - a.finished < 3 for a, b in itertools.pairwise(rows))
        return orders

    # Hanging: every send waits TELEGRAM_TIMEOUT (3 s) for nothing, then is retried.
    wave(10, extra=[{**order_body("tg_a"), "amount": "5", "request_id": "TG-FAIL-1"}])
    wait_for(lambda: len(fake.requests) >= 2, timeout=20, message="a retry after the first send timed out")
    wave(5)
    assert fake.messages == [] and fake.hung() >= 1

    # Down: connections refused.
    fake.stop()
    wave(5)
    assert fake.messages == []
    statuses = dict(Order.objects.values_list("request_id", "status"))
    assert statuses.pop("TG-FAIL-1") == OrderStatus.FAILED
    assert set(statuses.values()) == {OrderStatus.SUCCESS} and len(statuses) == 40
    # An order's row is written just after its final status: wait for the last one.
    wait_for(lambda: Notification.objects.count() == 42, timeout=10, message="40 fills, 1 failure, 1 start recorded")
    assert Notification.objects.filter(sent_at__isnull=True).count() == 42

    # Back: everything is delivered, each notification once.
    fake.start()
    wait_for(
        lambda: not Notification.objects.filter(sent_at__isnull=True).exists(),
        timeout=60,
        message="pending notifications to be delivered",
    )
    texts = [m.plain for m in fake.messages]
    assert sum("TG-FAIL-1" in text for text in texts) == 1
    delivered = sum(int(text.split()[1]) if text.startswith("🔔") else 1 for text in texts)
    assert delivered == 42
    assert Notification.objects.filter(gave_up_at__isnull=False).count() == 0

    service.stop()  # serve sends "scheduler stopped" itself on the way out
    assert fake.messages[-1].plain.startswith("⏹ Scheduler stopped · ")


def test_the_fake_takes_a_form_body_and_refuses_a_wrong_token(fake):
    def post(token: str) -> int:
        body = urllib.parse.urlencode({"chat_id": CHAT_ID, "text": "a &amp; b", "parse_mode": "HTML"}).encode()
        request = urllib.request.Request(f"{fake.base_url}/bot{token}/sendMessage", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    assert (post(fake.token), post(fake.token + "x")) == (200, 401)
    [message] = fake.messages
    assert (message.chat_id, message.plain, message.disable_notification) == (CHAT_ID, "a & b", False)


def settled_order(accounts, state: str, filled: str):
    from orders.services import transitions

    order = submit(order_type="limit", amount=Decimal("0.002"), price=Decimal("60000"))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SUCCESS, exchange_state="open", order_id="77")
    order.refresh_from_db()
    transitions.exchange_update(
        order, actor=transitions.WORKER, details={}, exchange_state=state, filled_amount=Decimal(filled),
        average_price=Decimal("60000"), fee=Decimal("0.03"), fee_currency="USDT",
    )  # fmt: skip
    return order


def test_it_tells_of_fills_only_when_asked(telegram, settings, accounts):
    settled_order(accounts, "filled", "0.002")
    assert not Notification.objects.filter(event="order_filled").exists()  # off by default

    set_level(settings, "order_filled", "on")
    settled_order(accounts, "filled", "0.002")

    [row] = Notification.objects.filter(event="order_filled")
    assert "Order filled" in row.text and "Filled 0.002 at 60000" in row.text and "fee 0.03 USDT" in row.text


def test_it_tells_of_an_exchange_cancel(telegram, settings, accounts):
    partly = settled_order(accounts, "cancelled", "0.001")  # cancelled by OKX after a partial fill
    unfilled = settled_order(accounts, "cancelled", "0")  # cancelled with nothing filled: fails

    [row] = Notification.objects.filter(event="order_exchange_cancelled")
    assert "Order cancelled by the exchange" in row.text and partly.request_id in row.text
    failed = Notification.objects.get(event="order_failed")
    assert unfilled.request_id in failed.text and "exchange_cancelled" in failed.text
