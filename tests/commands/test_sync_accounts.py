"""`manage.py sync_accounts`: the accounts file into the database, bad entries reported
and skipped, secrets never stored or shown."""

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, Order
from tests.conftest import BASE_DIR, subprocess_env

SHIPPED_FILE = BASE_DIR / "config" / "okx_accounts.json"
SECRET_VARIABLES = ("H5_TEST_DEMO_KEY", "H5_TEST_DEMO_SECRET", "H5_TEST_DEMO_PASSPHRASE")
DEMO = {
    "id": "account_demo", "name": "Demo", "mode": "demo", "api_key_env": "H5_TEST_DEMO_KEY",
    "secret_env": "H5_TEST_DEMO_SECRET", "passphrase_env": "H5_TEST_DEMO_PASSPHRASE",
}  # fmt: skip


@pytest.fixture(autouse=True)
def no_demo_secrets(monkeypatch):
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def write_accounts(path, *entries) -> str:
    path.write_text(json.dumps({"accounts": list(entries)}))
    return str(path)


def sync(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_accounts", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def account_rows() -> list[dict]:
    return list(Account.objects.order_by("pk").values())


@pytest.mark.django_db
def test_it_syncs_the_four_paper_accounts_of_the_shipped_file():
    out, err = sync("--file", str(SHIPPED_FILE))

    accounts = Account.objects.all()
    assert len(accounts) == 4
    assert {"account_main", "account_poit_main"} <= {a.id for a in accounts}
    assert all(a.mode == "paper" and a.enabled and a.in_config and a.config_error == "" for a in accounts)
    main = Account.objects.get(pk="account_main")
    assert (main.exchange, main.margin_mode, main.default_leverage) == ("okx", "cross", 10)
    assert main.options["reference_prices"]["BTC/USDT:USDT"] == 65000
    assert out.startswith("synced 4 account(s): ")
    assert err == ""


@pytest.mark.django_db
def test_it_updates_an_account_on_the_next_sync(tmp_path):
    path = write_accounts(tmp_path / "a.json", {"id": "acc_x", "default_leverage": 5})
    sync("--file", path)
    write_accounts(tmp_path / "a.json", {"id": "acc_x", "default_leverage": 7, "enabled": False})

    sync("--file", path)

    account = Account.objects.get(pk="acc_x")
    assert (account.default_leverage, account.enabled) == (7, False)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "detail"),
    [
        pytest.param('{"accounts": [', "is not valid JSON: line 1", id="truncated"),
        pytest.param("", "is not valid JSON: line 1", id="empty"),
        pytest.param('{"accounts": {"id": "x"}}', 'must be an object with an "accounts" list', id="not-a-list"),
        pytest.param("[]", 'must be an object with an "accounts" list', id="top-level-list"),
    ],
)
def test_it_refuses_a_malformed_file_in_one_line_and_changes_nothing(tmp_path, content, detail):
    sync("--file", str(SHIPPED_FILE))
    before = account_rows()
    path = tmp_path / "broken.json"
    path.write_text(content)

    with pytest.raises(CommandError) as failure:
        sync("--file", str(path))

    message = str(failure.value)
    assert "\n" not in message
    assert str(path) in message
    assert detail in message
    assert account_rows() == before


@pytest.mark.django_db
def test_it_refuses_a_missing_file_naming_it(tmp_path):
    path = tmp_path / "nowhere.json"

    with pytest.raises(CommandError, match="accounts file not found: .*nowhere.json"):
        sync("--file", str(path))

    assert Account.objects.count() == 0


@pytest.mark.django_db
def test_it_reports_and_skips_bad_entries_while_the_others_sync(tmp_path):
    path = write_accounts(
        tmp_path / "accounts.json",
        {"id": "good_one", "mode": "paper"},
        {"id": "bad_mode", "mode": "real"},
        {"id": "has space", "mode": "paper"},
        {"id": "bad_leverage", "default_leverage": 200},
        {"id": "text_leverage", "default_leverage": "10"},
        {"id": "bad_margin", "margin_mode": "cash"},
        {"mode": "paper"},
        "not an object",
        {"id": "good_one"},
        {"id": "good_two", "mode": "paper", "default_leverage": 3},
    )

    out, err = sync("--file", path)

    assert sorted(Account.objects.values_list("pk", flat=True)) == ["good_one", "good_two"]
    assert out == "synced 2 account(s): good_one, good_two\n"
    problems = err.splitlines()
    assert problems == [
        "account bad_mode: \"mode\" must be one of paper, demo, live, got 'real'",
        'account has space: "id" must be 1 to 64 letters, digits or _ . -',
        'account bad_leverage: "default_leverage" must be a whole number from 1 to 125',
        'account text_leverage: "default_leverage" must be a whole number from 1 to 125',
        "account bad_margin: \"margin_mode\" must be cross or isolated, got 'cash'",
        'account #6: "id" must be 1 to 64 letters, digits or _ . -',
        "account #7: must be an object",
        "account good_one: listed twice",
    ]


@pytest.mark.django_db
def test_it_names_the_missing_secret_variables_and_leaves_other_accounts_alone(tmp_path):
    path = write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, DEMO)

    out, err = sync("--file", path)

    demo = Account.objects.get(pk="account_demo")
    assert demo.config_error == (
        "environment variable H5_TEST_DEMO_KEY is not set; environment variable H5_TEST_DEMO_SECRET is not set; "
        "environment variable H5_TEST_DEMO_PASSPHRASE is not set"
    )
    assert err == f"account account_demo: {demo.config_error}\n"
    main = Account.objects.get(pk="account_main")
    assert main.config_error == "" and main.in_config and main.enabled
    assert out == "synced 2 account(s): account_main, account_demo\n"


@pytest.mark.django_db
def test_it_names_a_secret_field_missing_from_the_file(tmp_path):
    entry = {key: value for key, value in DEMO.items() if key != "passphrase_env"}
    path = write_accounts(tmp_path / "accounts.json", {**entry, "mode": "live"})

    sync("--file", path)

    assert Account.objects.get(pk="account_demo").config_error == (
        "environment variable H5_TEST_DEMO_KEY is not set; environment variable H5_TEST_DEMO_SECRET is not set; "
        '"passphrase_env" not set in the accounts file'
    )


@pytest.mark.django_db
def test_it_never_stores_or_prints_the_secret_values(tmp_path, monkeypatch):
    values = {
        "H5_TEST_DEMO_KEY": "SECRET-abc",
        "H5_TEST_DEMO_SECRET": "SECRET-def",
        "H5_TEST_DEMO_PASSPHRASE": "SECRET-ghi",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    path = write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, DEMO)

    out, err = sync("--file", path, "--strict")

    demo = Account.objects.get(pk="account_demo")
    assert demo.config_error == ""
    assert (demo.api_key_env, demo.secret_env, demo.passphrase_env) == SECRET_VARIABLES
    dump = StringIO()
    call_command("dumpdata", "orders", stdout=dump)
    assert '"account_demo"' in dump.getvalue()
    everything = dump.getvalue() + repr(account_rows()) + out + err
    assert "SECRET-" not in everything


@pytest.mark.django_db
def test_it_marks_an_account_removed_from_the_file_and_submit_refuses_it(tmp_path, api):
    path = write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, {"id": "account_old"})
    sync("--file", path)
    write_accounts(tmp_path / "accounts.json", {"id": "account_main"})

    out, _ = sync("--file", path)

    assert "no longer in the file (take no new orders): account_old" in out
    old = Account.objects.get(pk="account_old")
    assert old.in_config is False
    assert Account.objects.get(pk="account_main").in_config is True
    body = {"account_id": "account_old", "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market", "amount": 1}
    response = api.post("/api/order-scheduler/submit", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"account_id": ["Account 'account_old' is no longer in the accounts file."]}
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_brings_a_removed_account_back_when_it_returns_to_the_file(tmp_path):
    path = write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, {"id": "account_old"})
    sync("--file", path)
    write_accounts(tmp_path / "accounts.json", {"id": "account_main"})
    sync("--file", path)
    write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, {"id": "account_old"})

    sync("--file", path)

    assert Account.objects.get(pk="account_old").in_config is True


@pytest.mark.django_db
def test_it_passes_strict_mode_when_every_account_is_sound():
    out, err = sync("--file", str(SHIPPED_FILE), "--strict")

    assert out.startswith("synced 4 account(s)")
    assert err == ""


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_in_strict_mode_when_an_account_has_a_problem(tmp_path):
    path = write_accounts(tmp_path / "accounts.json", {"id": "account_main"}, DEMO)
    env = subprocess_env()
    for name in SECRET_VARIABLES:
        env.pop(name, None)

    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "sync_accounts", "--file", path, "--strict"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 1
    assert "account account_demo: environment variable H5_TEST_DEMO_KEY is not set" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "CommandError: 1 account(s) have problems"
    # Strict mode still syncs the sound accounts; it only makes the problem fatal.
    assert set(Account.objects.values_list("pk", flat=True)) == {"account_main", "account_demo"}


@pytest.mark.django_db
def test_it_reports_a_base_url_that_is_no_url_and_syncs_the_others(tmp_path):
    path = write_accounts(
        tmp_path / "accounts.json",
        {"id": "broken_url", "mode": "demo", "base_url": "http://[not-a-host"},
        {"id": "good_one", "mode": "paper"},
    )

    out, err = sync("--file", path)

    assert out == "synced 1 account(s): good_one\n"
    assert err.splitlines() == ['account broken_url: "base_url" must be an http(s) URL with a host and no credentials']


@pytest.mark.django_db
def test_it_reports_unknown_and_malformed_options_and_syncs_the_others(tmp_path):
    path = write_accounts(
        tmp_path / "accounts.json",
        {"id": "misspelt", "options": {"bacth": False}},
        {"id": "batch_text", "options": {"batch": "false"}},
        {"id": "pm_number", "options": {"portfolio_margin": 1}},
        {"id": "rate_text", "options": {"rate_limits": {"place_per_instrument": "60"}}},
        {"id": "rate_unknown", "options": {"rate_limits": {"place_per_second": 30}}},
        {"id": "rate_zero", "options": {"rate_limits": {"window_seconds": 0}}},
        {"id": "bad_mode", "options": {"position_mode": "hedge"}},
        {"id": "bad_types", "options": {"market_types": ["spot", "perp"]}},
        {"id": "bad_timeout", "options": {"timeout_ms": 10.5}},
        {"id": "bad_price", "options": {"reference_prices": {"BTC/USDT": -1}}},
        {"id": "good_one", "options": {
            "batch": False, "portfolio_margin": True, "position_mode": "long_short", "market_types": ["swap"],
            "timeout_ms": 2000, "latency_ms": 2.5, "max_amount": None, "reference_prices": {"BTC/USDT": 65000},
            "rate_limits": {"place_per_instrument": 120, "window_seconds": 2},
        }},
    )  # fmt: skip

    out, err = sync("--file", path)

    assert out == "synced 1 account(s): good_one\n"
    assert Account.objects.get(pk="good_one").options["rate_limits"] == {
        "place_per_instrument": 120,
        "window_seconds": 2,
    }
    problems = err.splitlines()
    assert problems[0].startswith('account misspelt: "options" takes position_mode, market_types, ')
    assert problems[0].endswith(", not 'bacth'")
    rate_message = (
        '"options.rate_limits" must be an object of positive numbers with keys among '
        "place_per_instrument, batch_orders_per_instrument, orders_per_account, window_seconds"
    )
    assert problems[1:] == [
        'account batch_text: "options.batch" must be true or false',
        'account pm_number: "options.portfolio_margin" must be true or false',
        f"account rate_text: {rate_message}",
        f"account rate_unknown: {rate_message}",
        f"account rate_zero: {rate_message}",
        'account bad_mode: "options.position_mode" must be one of "net", "long_short"',
        'account bad_types: "options.market_types" must be a list of "spot", "swap", "future", "option"',
        'account bad_timeout: "options.timeout_ms" must be a whole number of milliseconds from 100 to 120000',
        'account bad_price: "options.reference_prices" must be an object of positive prices by symbol',
    ]
