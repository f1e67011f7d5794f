"""GET /order-scheduler (and /): the server-rendered first view, its roles and its
languages, without a browser (tests/pages/test_dashboard_browser.py drives the real thing)."""

import json
import re
from datetime import timedelta
from gettext import GNUTranslations
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from orders.models import OrderStatus
from tests.conftest import BASE_DIR, user_with_role
from tests.helpers import make_order

URL = "/order-scheduler"
LOCALE = BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES"
pytestmark = pytest.mark.django_db


def embedded(response, element_id: str) -> dict:
    """The JSON the page hands its script (json_script)."""
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode(), re.S
    )
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


def row_ids(response) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', response.content.decode())


def signed_in(client, role: str = "viewer", accounts=None):
    user = user_with_role(f"{role}{len(accounts or ())}", role, accounts)
    client.force_login(user)
    return user


def test_it_sends_a_visitor_who_is_not_signed_in_to_the_login_page(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_it_redirects_the_root_to_the_dashboard(client):
    response = client.get("/")

    assert response.status_code == 302 and response["Location"] == URL


def test_it_refuses_a_signed_in_user_without_a_role(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("norole", password="pw-norole-123"))

    assert client.get(URL).status_code == 403


def test_it_renders_status_statistics_and_the_latest_100_orders_on_the_server(client, accounts):
    now = timezone.now()
    orders = [make_order(created_at=now - timedelta(seconds=n)) for n in range(103)]
    make_order(created_at=now + timedelta(seconds=1), status=OrderStatus.FAILED, error_message="Insufficient balance")
    signed_in(client)

    response = client.get(URL)

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    ids = row_ids(response)
    assert len(ids) == 100 and ids[1:] == [o.request_id for o in orders[:99]]
    page = response.content.decode()
    assert 'data-bind="today_total">104<' in page
    assert re.search(r'data-bind="today_rate"[^>]*>99.04 %<', page)
    assert 'id="page-next"' in page and "cursor=" in page
    initial = embedded(response, "initial-data")
    assert [o["request_id"] for o in initial["orders"]["orders"]] == ids
    assert initial["orders"]["has_more"] is True
    assert initial["status"]["today_stats"]["total"] == 104
    assert initial["stats"]["by_account"]["account_main"]["total"] == 104
    assert len(initial["stats"]["hourly"]["today"]) == 24


def test_it_embeds_the_same_orders_as_the_api_returns(client, accounts):
    make_order(created_at=timezone.now(), amount="10", price="65000.5", order_type="limit")
    signed_in(client)

    page = embedded(client.get(URL), "initial-data")["orders"]
    api = client.get("/api/order-scheduler/orders", HTTP_ACCEPT="application/json").json()

    assert page["orders"] == api["orders"]
    assert page["orders"][0]["amount"] == 10 and page["orders"][0]["price"] == 65000.5


def test_it_applies_the_filters_and_the_page_of_the_query_string(client, accounts):
    now = timezone.now()
    failed = [make_order(created_at=now - timedelta(seconds=n), status=OrderStatus.FAILED) for n in range(3)]
    make_order(created_at=now, account="account_hedge")
    signed_in(client)

    first = client.get(URL, {"status": "failed", "account": "account_main"})
    cursor = embedded(client.get(URL, {"status": "failed", "limit": 1}), "initial-data")["orders"]

    assert row_ids(first) == [o.request_id for o in failed]
    assert 'value="failed" checked' in first.content.decode()
    assert '<option value="account_main" selected>' in first.content.decode()
    assert (
        'href="/api/order-scheduler/orders.csv?bom=true&amp;status=failed&amp;account=account_main"'
        in first.content.decode()
    )
    assert cursor["orders"] and len(cursor["orders"]) == 3  # the page ignores a limit: it shows 100


def test_it_shows_a_bad_filter_next_to_the_filters_instead_of_failing(client, accounts):
    make_order(created_at=timezone.now())
    signed_in(client)

    response = client.get(URL, {"status": "done", "since": "yesterday"})

    assert response.status_code == 200
    assert row_ids(response) == []
    errors = embedded(response, "initial-data")["filter_errors"]
    assert set(errors) == {"status", "since"}
    assert re.search(r'id="filter-error" role="alert">status: Unknown value', response.content.decode())


def test_it_shows_a_user_limited_to_some_accounts_only_those(client, accounts):
    mine = make_order(created_at=timezone.now(), account="account_hedge")
    make_order(created_at=timezone.now(), account="account_main")
    signed_in(client, "viewer", accounts=["account_hedge"])

    response = client.get(URL)
    foreign = client.get(URL, {"account": "account_main"})

    assert row_ids(response) == [mine.request_id]
    initial = embedded(response, "initial-data")
    assert [a["id"] for a in initial["status"]["accounts"]] == ["account_hedge"]
    assert list(initial["stats"]["by_account"]) == ["account_hedge"]
    assert row_ids(foreign) == []
    assert "You may not see account" in embedded(foreign, "initial-data")["filter_errors"]["account"][0]


class Buttons(HTMLParser):
    """The data-action buttons and the elements with an id, as the browser would see them."""

    def __init__(self):
        super().__init__()
        self.actions: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "button" and "data-action" in attrs:
            self.actions.append(attrs["data-action"])
        if "id" in attrs:
            self.ids.add(attrs["id"])


def parsed(response) -> Buttons:
    parser = Buttons()
    parser.feed(response.content.decode())
    return parser


@pytest.mark.parametrize(
    "role, actions, tools",
    [
        ("viewer", [], set()),
        ("trader", ["cancel", "retry"], {"new-order", "submit-dialog"}),
        ("admin", ["toggle-trading", "cancel", "retry"], {"new-order", "submit-dialog"}),
    ],
)
def test_it_offers_actions_only_to_the_roles_allowed_them(client, accounts, role, actions, tools):
    make_order(created_at=timezone.now(), status=OrderStatus.QUEUED)
    make_order(created_at=timezone.now() - timedelta(seconds=1), status=OrderStatus.FAILED)
    signed_in(client, role)

    response = client.get(URL)
    page = parsed(response)
    config = embedded(response, "dashboard-config")

    assert [a for a in page.actions if not a.endswith("-account")] == actions
    assert {"new-order", "submit-dialog"} & page.ids == tools
    assert ("pause-account" in page.actions) is (role == "admin")
    assert config["can_trade"] is (role != "viewer") and config["can_operate"] is (role == "admin")


def test_it_speaks_chinese_from_the_browser_language_or_the_toggle(client, accounts):
    signed_in(client)

    english = client.get(URL)
    chinese = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": URL})
    toggled = client.get(URL)
    catalog = client.get("/jsi18n/")

    assert "<h1>Order Scheduling Center</h1>" in english.content.decode()
    assert "<h1>订单调度中心</h1>" in chinese.content.decode()
    assert '<html lang="zh-hans"' in toggled.content.decode()
    assert '"Updated %(n)s s ago": "%(n)s \\u79d2\\u524d\\u66f4\\u65b0"' in catalog.content.decode()


def test_it_styles_and_translates_the_login_page(client):
    english = client.get("/accounts/login/")
    chinese = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert 'href="/static/orders/dashboard.css"' in english.content.decode()
    assert 'data-theme="dark"' in english.content.decode()
    assert "登录" in chinese.content.decode() and "用户名" in chinese.content.decode()


# --- The translation files ----------------------------------------------------------------


def po_entries(path) -> dict[str, list[str]]:
    """msgid -> its msgstr(s), from a .po file (enough of the format for ours)."""
    entries: dict[str, list[str]] = {}
    key, current = None, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("msgid "):
            key, current = "id", [json.loads(line[6:])]
            msgid, strs = current, []
        elif line.startswith("msgstr"):
            key = "str"
            strs.append(json.loads(line.split(" ", 1)[1]))
        elif line.startswith('"') and key == "id":
            msgid[-1] += json.loads(line)
        elif line.startswith('"') and key == "str":
            strs[-1] += json.loads(line)
        elif not line.strip() and key == "str":
            entries[msgid[0]] = strs
            key = None
    entries.pop("", None)
    return entries


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_it_has_a_compiled_chinese_translation_for_every_string(domain):
    entries = po_entries(LOCALE / f"{domain}.po")
    with open(LOCALE / f"{domain}.mo", "rb") as mo:
        compiled = GNUTranslations(mo)

    assert entries
    assert [msgid for msgid, strs in entries.items() if not all(strs)] == []
    # the committed .mo is the .po compiled (CI has no gettext tools to rebuild it)
    assert [msgid for msgid, strs in entries.items() if compiled.gettext(msgid) != strs[0]] == []


def test_it_has_every_string_of_the_script_in_the_javascript_catalog():
    modules = [
        BASE_DIR / "static" / "orders" / "dashboard.js",
        *(BASE_DIR / "static" / "orders" / "dashboard").glob("*.js"),
    ]
    script = "\n".join(path.read_text(encoding="utf-8") for path in modules)
    used = set(re.findall(r'gettext\("((?:[^"\\]|\\.)*)"', script))
    entries = po_entries(LOCALE / "djangojs.po")

    assert used and sorted(used - set(entries)) == []
