"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the
app served over real HTTP (pytest-django's live server; `manage.py serve` where the
server has to stop and come back). One browser for the module, a new context (fresh
cookies and storage) per test; each test leaves a screenshot in test-output/<test>/.

The tests fail, never skip, when Chromium is missing: .ci/run installs it."""

import csv
import io
import json
import os
import re
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from orders.models import Order, OrderStatus
from tests.conftest import user_with_role, wait_for
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, LiveClient, free_port, get_json, make_order, submit

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DRAWN = "() => performance.getEntriesByName('dashboard-drawn').length > 0"
REFRESH_TIMEOUT_MS = 12_000  # one 5 s refresh, with room for a busy machine


@pytest.fixture(scope="module")
def browser():
    """One Chromium for all the browser tests (they are all in this module)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright

    # While Playwright's sync API is up, an event loop counts as running in this thread,
    # and Django refuses ORM calls from it; the tests' ORM calls between browser steps
    # are plain synchronous code. Only for this module: the flag must not outlive it
    # (`check --deploy` refuses it in any later subprocess).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Watched:
    """A page whose console errors, uncaught exceptions and failed requests are kept
    (the live stream closed on purpose, by a hidden tab, is no failure)."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self._failed(r))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))

    def _failed(self, request) -> None:
        if "/api/order-scheduler/events" in request.url and "ERR_ABORTED" in (request.failure or ""):
            return
        self.problems.append(f"failed: {request.url} {request.failure}")


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def shoot(output_dir):
    def shoot(page, name: str = "page", *, full_page: bool = True) -> None:
        page.screenshot(path=str(output_dir / f"{name}.png"), full_page=full_page)

    return shoot


def sign_in(context, base_url: str, user) -> None:
    """A session for `user` in the browser context, without the login form."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base_url}])


def open_dashboard(context, base_url: str, query: str = "") -> Watched:
    watched = Watched(context.new_page())
    watched.page.goto(f"{base_url}/order-scheduler{query}")
    watched.page.wait_for_function(DRAWN)
    return watched


def table_ids(page) -> list[str]:
    return page.eval_on_selector_all("#orders-body tr[data-id]", "rows => rows.map(r => r.dataset.id)")


def wait_for_ids(page, expected: list[str]) -> None:
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('#orders-body tr[data-id]')].map(r => r.dataset.id)) === JSON.stringify(ids)",
        arg=expected,
        timeout=REFRESH_TIMEOUT_MS,
    )


def newest_first(orders) -> list[str]:
    return [o.request_id for o in sorted(orders, key=lambda o: (o.created_at, o.pk), reverse=True)]


# --- Tests ----------------------------------------------------------------------------------


def test_it_logs_in_and_draws_the_page_with_no_console_errors_or_failed_requests(live_server, context, accounts, shoot):
    user_with_role("ana", "trader")
    now = timezone.now()
    for n, status in enumerate(["success", "success", "failed", "queued", "cancelled", "expired", "processing"]):
        make_order(
            created_at=now - timedelta(minutes=n), status=status, account="account_main" if n % 2 else "account_hedge"
        )
    watched = Watched(context.new_page())
    page = watched.page

    page.goto(f"{live_server.url}/order-scheduler")
    assert "/accounts/login/" in page.url
    shoot(page, "login")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "pw-ana-123")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/order-scheduler$"))
    page.wait_for_function(DRAWN)

    assert page.locator("h1").inner_text() == "Order Scheduling Center"
    assert page.locator('[data-bind="queue_size"]').inner_text() == "1"
    assert page.locator('[data-bind="today_total"]').inner_text() == "7"
    assert page.locator('[data-bind="today_rate"]').inner_text() == "66.67 %"
    assert len(table_ids(page)) == 7
    assert page.locator(".chart.drawn canvas").count() == 3
    assert page.locator("#new-order").is_visible()
    page.wait_for_timeout(300)  # any late request or error would show up now
    shoot(page, "dashboard-wide-dark")
    assert watched.problems == []


def test_it_shows_an_order_submitted_through_the_api_within_one_refresh(live_server, context, accounts, shoot):
    user = user_with_role("ben", "trader")
    token = Token.objects.create(user=user).key
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    page.evaluate("window.notReloaded = true")

    order = submit(LiveClient(live_server.url, token), amount=Decimal("0.002"))

    row = page.locator(f'#orders-body tr[data-id="{order.request_id}"]')
    row.wait_for(timeout=REFRESH_TIMEOUT_MS)
    assert row.locator(".status").inner_text() == "Queued"
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_function("() => document.querySelector('[data-bind=queue_size]').textContent === '1'")
    assert re.match(r"Updated \d+ s ago", page.locator("#updated").inner_text())
    shoot(page)
    assert watched.problems == []


def test_it_pauses_the_refresh_while_the_tab_is_hidden_and_catches_up_when_shown(live_server, context, accounts):
    user = user_with_role("bo", "viewer")
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    calls: list[str] = []
    page.on("request", lambda r: "/api/order-scheduler/" in r.url and calls.append(r.url))
    visibility = """state => {
        Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }"""

    page.evaluate(visibility, "hidden")
    page.wait_for_timeout(7_000)  # longer than one refresh period: nothing may be asked for
    assert calls == []
    order = make_order(created_at=timezone.now(), status=OrderStatus.QUEUED)

    page.evaluate(visibility, "visible")
    page.locator(f'#orders-body tr[data-id="{order.request_id}"]').wait_for(timeout=3_000)
    assert any("/status" in url for url in calls) and any("/orders?" in url for url in calls)
    assert watched.problems == []


def test_it_narrows_the_table_by_each_filter_and_the_search(live_server, context, accounts, shoot):
    user = user_with_role("cai", "viewer")
    now = timezone.now()
    made = {
        "plain": make_order(created_at=now - timedelta(hours=30)),
        "hedge": make_order(created_at=now - timedelta(minutes=9), account="account_hedge"),
        "failed": make_order(created_at=now - timedelta(minutes=8), status=OrderStatus.FAILED),
        "grid": make_order(created_at=now - timedelta(minutes=7), strategy_name="grid_btc"),
        "eth": make_order(created_at=now - timedelta(minutes=6), symbol="ETH/USDT:USDT"),
        "sell": make_order(created_at=now - timedelta(minutes=5), side="sell"),
        "queued": make_order(created_at=now - timedelta(minutes=4), status=OrderStatus.QUEUED),
    }
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    form = page.locator("#filters")
    everything = newest_first(made.values())
    wait_for_ids(page, everything)

    def check(expected: set[str]) -> None:
        wait_for_ids(page, newest_first(made[name] for name in expected))

    form.locator("select[name=account]").select_option("account_hedge")
    check({"hedge"})
    assert "account=account_hedge" in page.url
    form.locator("select[name=account]").select_option("")
    check(set(made))

    form.locator("label.status-failed").click()
    check({"failed"})
    form.locator("label.status-queued").click()
    check({"failed", "queued"})
    form.locator("label.status-failed").click()
    form.locator("label.status-queued").click()
    check(set(made))

    form.locator("input[name=strategy]").fill("grid_btc")
    check({"grid"})
    form.locator("input[name=strategy]").fill("")
    form.locator("input[name=symbol]").fill("ETH/USDT:USDT")
    check({"eth"})
    form.locator("input[name=symbol]").fill("")
    form.locator("select[name=side]").select_option("sell")
    check({"sell"})
    form.locator("select[name=side]").select_option("")
    check(set(made))

    yesterday = timezone.localtime(now - timedelta(hours=30))
    form.locator("input[name=since]").fill((yesterday - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    form.locator("input[name=until]").fill((yesterday + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    check({"plain"})
    form.locator("input[name=since]").fill("")
    form.locator("input[name=until]").fill("")
    check(set(made))

    form.locator("input[name=q]").fill(made["eth"].request_id)
    check({"eth"})
    form.locator("input[name=q]").fill(made["sell"].client_order_id[:12])
    check({"sell"})
    shoot(page)

    page.reload()  # the filters live in the address: a reload keeps them
    page.wait_for_function(DRAWN)
    assert table_ids(page) == [made["sell"].request_id]
    assert form.locator("input[name=q]").input_value() == made["sell"].client_order_id[:12]
    assert watched.problems == []


def test_it_pages_back_through_history_with_the_cursor(live_server, context, accounts):
    user = user_with_role("dai", "viewer")
    now = timezone.now()
    orders = [make_order(created_at=now - timedelta(seconds=n)) for n in range(230)]
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    expected = newest_first(orders)

    page.click("#page-next")
    wait_for_ids(page, expected[100:200])
    page.click("#page-next")
    wait_for_ids(page, expected[200:])
    assert page.locator("#page-next").is_hidden()
    page.click("#page-prev")
    wait_for_ids(page, expected[100:200])
    page.click("#page-first")
    wait_for_ids(page, expected[:100])
    assert watched.problems == []


def test_it_shows_every_field_and_the_error_of_a_failed_order_in_the_detail_popup(
    live_server, context, accounts, shoot
):
    user = user_with_role("eva", "viewer")
    failed = make_order(
        created_at=timezone.now(),
        status=OrderStatus.FAILED,
        error_code="51008",
        error_message="Order failed. Insufficient USDT margin in account",
    )
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page

    page.locator(f'#orders-body tr[data-id="{failed.request_id}"] td').first.click()
    dialog = page.locator("#order-dialog")
    dialog.wait_for(state="visible")

    assert "Insufficient USDT margin in account" in dialog.locator(".error-box").inner_text()
    assert "51008" in dialog.locator(".error-box").inner_text()
    details = dialog.locator(".details").inner_text()
    for label in ("Client order id", "Queue wait (ms)", "Execution (ms)", "Attempts", "Strategy"):
        assert label in details
    assert failed.client_order_id in details
    assert "40 ms" in dialog.locator(".timeline").inner_text()
    assert dialog.locator("[data-action]").count() == 0  # a viewer gets no action
    shoot(page)
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert watched.problems == []


def test_it_cancels_a_queued_order_and_retries_a_failed_one(live_server, context, accounts, shoot):
    user = user_with_role("fay", "trader")
    now = timezone.now()
    queued = make_order(created_at=now - timedelta(seconds=2), status=OrderStatus.QUEUED)
    failed = make_order(created_at=now - timedelta(seconds=1), status=OrderStatus.FAILED, amount=Decimal("0.003"))
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page

    page.locator(f'#orders-body tr[data-id="{queued.request_id}"] [data-action=cancel]').click()
    page.locator("#confirm-dialog").wait_for(state="visible")
    shoot(page, "confirm-cancel", full_page=False)
    page.click("#confirm-ok")
    page.locator(".toast.ok", has_text="Order cancelled").wait_for()
    page.locator(f'#orders-body tr[data-id="{queued.request_id}"] .status-cancelled').wait_for()
    assert Order.objects.get(pk=queued.pk).status == OrderStatus.CANCELLED

    page.locator(f'#orders-body tr[data-id="{failed.request_id}"] [data-action=retry]').click()
    page.click("#confirm-ok")
    page.locator(".toast.ok", has_text="Order resubmitted as").wait_for()
    retry = Order.objects.get(retry_of=failed)
    assert retry.status == OrderStatus.QUEUED and retry.amount == failed.amount
    page.locator(f'#orders-body tr[data-id="{retry.request_id}"] .status-queued').wait_for()

    # Retrying it again is refused by the server, and the page says why.
    page.locator(f'#orders-body tr[data-id="{failed.request_id}"] [data-action=retry]').click()
    page.click("#confirm-ok")
    page.locator(".toast.bad", has_text="already retried").wait_for()
    assert Order.objects.filter(retry_of=failed).count() == 1
    shoot(page)
    # the refused retry's 409 (and the console's note of it) is expected
    assert [p for p in watched.problems if "409" not in p] == []


def test_it_submits_an_order_from_the_form_showing_the_apis_field_errors(live_server, context, accounts, shoot):
    user = user_with_role("gus", "trader")
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    form = page.locator("#submit-form")

    page.click("#new-order")
    form.locator("input[name=symbol]").fill("btc-usdt")
    form.locator("label.seg", has_text="Limit").click()
    form.locator("button[type=submit]").click()
    page.click("#confirm-ok")
    form.locator('[data-error-for="symbol"]', has_text="Use ccxt's unified form").wait_for()
    assert form.locator('[data-error-for="amount"]').inner_text() == "This field is required."
    assert form.locator('[data-error-for="non_field_errors"]').inner_text() == "Invalid order"
    shoot(page, "field-errors", full_page=False)

    form.locator("input[name=symbol]").fill("ETH/USDT:USDT")
    form.locator("input[name=amount]").fill("0.05")
    form.locator("button[type=submit]").click()
    page.click("#confirm-ok")
    form.locator('[data-error-for="price"]', has_text="A limit order needs a price.").wait_for()
    assert form.locator('[data-error-for="symbol"]').inner_text() == ""  # the earlier errors are gone
    assert Order.objects.count() == 0

    form.locator("input[name=price]").fill("3400.5")
    form.locator("button[type=submit]").click()
    assert "ETH/USDT:USDT" in page.locator("#confirm-text").inner_text()
    page.click("#confirm-ok")
    page.locator(".toast.ok", has_text="submitted").wait_for()
    order = Order.objects.get()
    assert (order.symbol, str(order.amount.normalize()), str(order.price.normalize())) == (
        "ETH/USDT:USDT",
        "0.05",
        "3400.5",
    )
    assert order.created_by == user
    page.locator(f'#orders-body tr[data-id="{order.request_id}"]').wait_for()
    shoot(page)
    assert [p for p in watched.problems if "400" not in p] == []


def test_it_downloads_a_csv_of_exactly_the_filtered_rows(live_server, context, accounts):
    user = user_with_role("hal", "viewer")
    now = timezone.now()
    for n in range(6):
        make_order(created_at=now - timedelta(minutes=n), status=[OrderStatus.SUCCESS, OrderStatus.FAILED][n % 2])
    make_order(created_at=now, status=OrderStatus.FAILED, account="account_hedge")
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page

    page.locator("#filters label.status-failed").click()
    page.locator("#filters select[name=account]").select_option("account_main")
    expected = newest_first(Order.objects.filter(status="failed", account_id="account_main"))
    wait_for_ids(page, expected)
    with page.expect_download() as download:
        page.click("#csv-link")
    raw = Path(download.value.path()).read_bytes()
    with page.expect_download() as workbook:
        page.click("#xlsx-link")

    assert raw.startswith(b"\xef\xbb\xbf")  # for Excel
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [row["request_id"] for row in rows] == table_ids(page) == expected
    assert {row["status"] for row in rows} == {"failed"} and {row["account_id"] for row in rows} == {"account_main"}
    assert download.value.suggested_filename.startswith("orders-") and download.value.suggested_filename.endswith(
        ".csv"
    )
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(Path(workbook.value.path()).read_bytes()), read_only=True)["orders"]
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == expected
    assert workbook.value.suggested_filename.endswith(".xlsx")
    assert watched.problems == []


def test_it_switches_theme_and_language_and_remembers_both(live_server, context, accounts, shoot):
    user = user_with_role("ivy", "viewer")
    make_order(created_at=timezone.now(), status=OrderStatus.FAILED)
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    dark = page.evaluate(background)

    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(background) != dark
    shoot(page, "light-en")
    page.click("#lang-toggle")
    page.wait_for_load_state()
    page.wait_for_function(DRAWN)

    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.locator("h1").inner_text() == "订单调度中心"
    assert page.evaluate("document.documentElement.lang") == "zh-hans"
    assert page.locator("#orders-body .status").first.inner_text() == "失败"  # built by the script
    page.wait_for_function("() => /秒前/.test(document.querySelector('#updated').textContent)")
    page.reload()
    page.wait_for_function(DRAWN)
    assert page.locator("h1").inner_text() == "订单调度中心"
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    shoot(page, "light-zh")

    page.click("#theme-toggle")
    page.click("#lang-toggle")
    page.wait_for_function(DRAWN)
    assert page.locator("h1").inner_text() == "Order Scheduling Center"
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert watched.problems == []


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_it_fits_a_375px_phone_without_horizontal_scroll(live_server, browser, accounts, output_dir, theme):
    user = user_with_role("jon", "trader")
    now = timezone.now()
    for n in range(12):
        make_order(
            created_at=now - timedelta(minutes=n), status=OrderStatus.values[n % 7], strategy_name="bottom_signal_long"
        )
    context = browser.new_context(
        viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    try:
        context.add_init_script(f"localStorage.setItem('osc-theme', '{theme}')")
        sign_in(context, live_server.url, user)
        watched = open_dashboard(context, live_server.url)
        page = watched.page

        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
        wrap = page.locator("#orders-wrap")
        assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")  # the table scrolls in its card
        page.screenshot(path=str(output_dir / f"phone-{theme}.png"), full_page=True)
        page.click("#new-order")
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
        page.screenshot(path=str(output_dir / f"phone-{theme}-new-order.png"))
        page.keyboard.press("Escape")
        page.locator("#orders-body tr[data-id] td").first.click()
        page.locator("#order-dialog").wait_for(state="visible")
        page.screenshot(path=str(output_dir / f"phone-{theme}-detail.png"))
        assert watched.problems == []
    finally:
        context.close()


def test_it_keeps_working_when_the_chart_library_does_not_load(live_server, context, accounts, shoot):
    user = user_with_role("kim", "viewer")
    order = make_order(created_at=timezone.now(), status=OrderStatus.FAILED)
    sign_in(context, live_server.url, user)
    context.route("**/chart.umd.min.js", lambda route: route.abort())
    watched = open_dashboard(context, live_server.url)
    page = watched.page

    assert table_ids(page) == [order.request_id]
    assert "Charts are unavailable" in page.locator('[data-chart="hourly"]').inner_text()
    assert page.locator('table[data-group="by_account"] tbody tr').count() == 1
    # the aborted file is the one failed request (the console names no URL for it)
    assert [p for p in watched.problems if "chart.umd.min.js" not in p and "ERR_FAILED" not in p] == []
    assert not [p for p in watched.problems if p.startswith("page error")]
    shoot(page)


def test_it_shows_a_banner_while_the_server_is_unreachable_and_recovers(service_factory, browser, accounts, output_dir):
    user = user_with_role("lou", "viewer")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # DEBUG=1: static files from the source tree (nothing collected in a test run)
    args = {
        "args": ("--no-cluster", "--host", "127.0.0.1", "--port", str(port), "--web-workers", "1"),
        "env": {"DEBUG": "1"},
    }
    server = service_factory(**args)
    wait_for(lambda: get_json(f"{base}/healthz"), timeout=30, message="the web server")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        sign_in(context, base, user)
        page = open_dashboard(context, base).page
        banner = page.locator("#banner")
        assert banner.is_hidden()

        server.stop()
        banner.wait_for(state="visible", timeout=REFRESH_TIMEOUT_MS)
        assert "Cannot reach the server" in banner.inner_text()
        page.wait_for_function("() => document.querySelector('#live').classList.contains('down')")
        page.screenshot(path=str(output_dir / "unreachable.png"))

        service_factory(**args)
        wait_for(lambda: get_json(f"{base}/healthz"), timeout=30, message="the web server again")
        banner.wait_for(state="hidden", timeout=REFRESH_TIMEOUT_MS)
        page.locator(".toast.ok", has_text="Connection restored").wait_for()
        assert not page.evaluate("document.querySelector('#live').classList.contains('down')")
        page.screenshot(path=str(output_dir / "recovered.png"))
    finally:
        context.close()


# When each order row first showed each status, by the browser's clock (the same clock
# as the test's: one machine).
WATCH_ROWS = """() => {
    window.rowSeen = {};
    const note = () => {
        for (const row of document.querySelectorAll('#orders-body tr[data-id]')) {
            const status = (row.className.match(/row-(\\w+)/) || [])[1];
            const key = `${row.dataset.id}:${status}`;
            if (!(key in window.rowSeen)) window.rowSeen[key] = Date.now();
        }
    };
    note();
    new MutationObserver(note).observe(document.querySelector('#orders-body'), {childList: true, subtree: true, attributes: true});
}"""


def test_it_shows_a_new_order_and_a_status_change_within_half_a_second(live_server, context, accounts):
    user = user_with_role("tim", "trader")
    token = Token.objects.create(user=user).key
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    page.wait_for_function("() => document.querySelector('#stream-mode').textContent === 'Live'")
    page.evaluate(WATCH_ROWS)

    def timed(action, key: str) -> float:
        started = time.time() * 1000
        action()
        page.wait_for_function(f"() => window.rowSeen[{json.dumps(key)}]", timeout=5_000)
        return page.evaluate(f"() => window.rowSeen[{json.dumps(key)}]") - started

    client = LiveClient(live_server.url, token)
    submitted, changed = [], []
    for _ in range(7):
        # The row's key is known only once submit answers: timed from before the request.
        started = time.time() * 1000
        request_id = submit(client, amount=Decimal("0.002")).request_id
        key = f"{request_id}:queued"
        page.wait_for_function(f"() => window.rowSeen[{json.dumps(key)}]", timeout=5_000)
        submitted.append(page.evaluate(f"() => window.rowSeen[{json.dumps(key)}]") - started)

        cancel = f"/api/order-scheduler/orders/{request_id}/cancel"
        changed.append(timed(lambda cancel=cancel: client.post(cancel, {}), f"{request_id}:cancelled"))

    submitted.sort()
    changed.sort()
    print(
        f"submit -> row: median {submitted[3]:.0f} ms {submitted}; cancel -> status: median {changed[3]:.0f} ms {changed}"
    )
    assert submitted[3] <= 500 and changed[3] <= 500
    assert watched.problems == []


def test_it_asks_for_nothing_while_the_stream_is_up_and_idle(live_server, context, accounts):
    user = user_with_role("ida", "viewer")
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    page.wait_for_function("() => document.querySelector('#stream-mode').textContent === 'Live'")
    calls: list[str] = []
    page.on("request", lambda r: "/api/order-scheduler/" in r.url and calls.append(r.url))
    page.wait_for_timeout(7_000)  # longer than one polling period
    assert calls == []
    assert re.match(r"Updated [0-5] s ago", page.locator("#updated").inner_text())  # heartbeats count
    assert watched.problems == []


def test_it_falls_back_to_polling_and_says_so_when_the_stream_drops(live_server, context, accounts):
    from orders.services import stream

    user = user_with_role("pol", "viewer")
    sign_in(context, live_server.url, user)
    watched = open_dashboard(context, live_server.url)
    page = watched.page
    page.wait_for_function("() => document.querySelector('#stream-mode').textContent === 'Live'")
    calls: list[str] = []
    page.on("request", lambda r: "/order-scheduler/status" in r.url and calls.append(r.url))
    stream.hub.close()  # the server ends every stream and takes no new one
    page.wait_for_function("() => document.querySelector('#stream-mode').textContent.startsWith('Polling')")
    order = make_order(created_at=timezone.now(), status=OrderStatus.QUEUED)
    page.locator(f'#orders-body tr[data-id="{order.request_id}"]').wait_for(timeout=REFRESH_TIMEOUT_MS)
    assert calls  # found by polling
    # The refused stream, and the browser's own console line about it, are expected.
    assert all("/api/order-scheduler/events" in p or "status of 503" in p for p in watched.problems)
