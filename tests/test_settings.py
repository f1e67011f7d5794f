"""Settings come from the environment (and an optional .env file); a bad value stops
start-up with one line naming the variable. Each case runs manage.py in a subprocess
with the real settings module, as `make run` does."""

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys

import pytest

from scheduler_site.env import secret_key
from tests.conftest import BASE_DIR

MANAGE = str(BASE_DIR / "manage.py")
# Variables the tests set themselves; inherited values would hide what is being tested.
OWN_VARIABLES = (
    "DEBUG", "PORT", "TIME_ZONE", "DATABASE_URL", "REDIS_URL", "Q_TIMEOUT", "Q_RETRY",
    "ORDER_SCHEDULER_LEASE_SECONDS", "ORDER_SCHEDULER_MAX_BATCH", "LOG_LEVEL", "ENV_FILE", "Q_WORKERS",
    "ORDER_SCHEDULER_ACCOUNTS_FILE", "ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS", "ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS",
    "ORDER_SCHEDULER_EXCHANGE_TIMEOUT", "ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL",
)  # fmt: skip


def manage(*args: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    full_env.update(
        DJANGO_SETTINGS_MODULE="scheduler_site.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'settings.sqlite3'}",
        ENV_FILE=str(tmp_path / "no.env"),  # a developer's own .env must not leak in
        LOG_LEVEL="WARNING",
    )
    full_env.update(env)
    return subprocess.run(
        [sys.executable, MANAGE, *args], cwd=BASE_DIR, env=full_env, capture_output=True, text=True, timeout=60
    )


def show(expression: str, *, tmp_path, **env: str) -> str:
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        f"from django.conf import settings; print({expression})",
        tmp_path=tmp_path,
        **env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"TIME_ZONE": "Mars/Base"}, "TIME_ZONE"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "garbage"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"Q_TIMEOUT": "100", "Q_RETRY": "50"}, "Q_RETRY"),
        ({"Q_WORKERS": "0"}, "Q_WORKERS"),
        ({"Q_POLL": "fast"}, "Q_POLL"),
        ({"ORDER_SCHEDULER_LEASE_SECONDS": "0"}, "ORDER_SCHEDULER_LEASE_SECONDS"),
        ({"Q_TIMEOUT": "30", "ORDER_SCHEDULER_LEASE_SECONDS": "60"}, "ORDER_SCHEDULER_LEASE_SECONDS"),
        ({"ORDER_SCHEDULER_MAX_BATCH": "-1"}, "ORDER_SCHEDULER_MAX_BATCH"),
        (
            {"ORDER_SCHEDULER_LEASE_SECONDS": "5", "ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS": "4"},
            "ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS + ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS",
        ),
        ({"Q_TIMEOUT": "60", "ORDER_SCHEDULER_LEASE_SECONDS": "20"}, "ORDER_SCHEDULER_EXCHANGE_TIMEOUT"),
        ({"ORDER_SCHEDULER_DEFAULT_EXPIRES_IN": "-1"}, "ORDER_SCHEDULER_DEFAULT_EXPIRES_IN"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"ORDER_SCHEDULER_EXPORT_RATE": "often"}, "ORDER_SCHEDULER_EXPORT_RATE"),
        ({"TELEGRAM_API_BASE_URL": "http://127.0.0.1:8081"}, "TELEGRAM_API_BASE_URL"),
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT"),
        ({"TRUSTED_PROXY_COUNT": "many"}, "TRUSTED_PROXY_COUNT"),
        ({"ORDER_SCHEDULER_STATS_RATE": "0/min"}, "ORDER_SCHEDULER_STATS_RATE"),
        ({"ORDER_SCHEDULER_EXPORT_MAX_ROWS": "0"}, "ORDER_SCHEDULER_EXPORT_MAX_ROWS"),
        ({"DATABASE_URL": "postgres://u@db:5432/o", "DATABASE_STATEMENT_TIMEOUT": "-1"}, "DATABASE_STATEMENT_TIMEOUT"),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None,
)
def test_it_refuses_to_start_with_a_bad_value_naming_the_variable(tmp_path, env, variable):
    result = manage("check", tmp_path=tmp_path, **env)

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one readable line, no traceback
    assert lines[0].startswith("error: ")
    assert variable in lines[0]


def test_it_never_prints_the_password_of_a_bad_database_url(tmp_path):
    result = manage("check", tmp_path=tmp_path, DATABASE_URL="postgres://user:PW-hunter2@db:notaport/orders")

    assert result.returncode == 1
    assert "DATABASE_URL" in result.stderr
    assert "PW-hunter2" not in result.stderr + result.stdout


def test_it_starts_with_the_defaults(tmp_path):
    result = manage("check", tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr
    assert show("settings.DEBUG, settings.PORT, settings.HOST, settings.TIME_ZONE", tmp_path=tmp_path) == (
        "False 9002 127.0.0.1 UTC"
    )


def test_it_reads_the_env_file_and_real_variables_win(tmp_path):
    env_file = tmp_path / "service.env"
    env_file.write_text("# comment\nPORT=9100\nORDER_SCHEDULER_MAX_BATCH=7\nTIME_ZONE=Asia/Shanghai\n")

    shown = show(
        "settings.PORT, settings.ORDER_SCHEDULER['MAX_BATCH'], settings.TIME_ZONE",
        tmp_path=tmp_path,
        ENV_FILE=str(env_file),
        PORT="9200",
    )

    assert shown == "9200 7 Asia/Shanghai"


def test_it_names_a_bad_value_that_comes_from_the_env_file(tmp_path):
    env_file = tmp_path / "service.env"
    env_file.write_text("DEBUG=maybe\n")

    result = manage("check", tmp_path=tmp_path, ENV_FILE=str(env_file))

    assert result.returncode == 1
    assert result.stderr.startswith("error: DEBUG ")


def test_it_uses_an_absolute_sqlite_path_in_wal_mode(tmp_path):
    db_file = tmp_path / "nested" / "orders.sqlite3"

    result = manage("migrate", "--noinput", "-v", "0", tmp_path=tmp_path, DATABASE_URL=f"sqlite:///{db_file}")

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db_file) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        journal_mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"orders_order", "orders_account", "django_q_ormq"} <= tables
    assert journal_mode == "wal"


def test_it_generates_the_secret_key_once_into_a_private_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key_file = tmp_path / "data" / "secret_key"

    first = secret_key("SECRET_KEY", key_file)
    second = secret_key("SECRET_KEY", key_file)

    assert len(first) >= 50
    assert second == first
    assert key_file.read_text() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_it_prefers_the_secret_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    key_file = tmp_path / "secret_key"

    assert secret_key("SECRET_KEY", key_file) == "from-the-environment"
    assert not key_file.exists()


def test_it_documents_every_variable_in_the_env_example():
    sources = (BASE_DIR / "scheduler_site" / "settings.py").read_text()
    sources += (BASE_DIR / "orders" / "management" / "commands" / "serve.py").read_text()
    read = set(re.findall(r'(?:env_\w+|secret_key)\(\s*"([A-Z][A-Z0-9_]*)"', sources))
    read |= set(re.findall(r'environ\.get\(\s*"([A-Z][A-Z0-9_]*)"', sources))
    documented = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE))

    assert len(read) > 20
    assert read - documented == set()


def test_it_passes_the_deploy_checks_under_the_documented_production_settings(tmp_path):
    env = {
        **os.environ,
        "HTTPS": "1",
        "TRUST_X_FORWARDED_PROTO": "1",
        "SECRET_KEY": "x" * 20 + "Production-Secret-Key-With-Enough-Entropy-0123456789",
        "ALLOWED_HOSTS": "orders.example.com",
        "DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "scheduler_site.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_warns_about_plain_http_without_the_production_settings(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
           "DJANGO_SETTINGS_MODULE": "scheduler_site.settings"}  # fmt: skip
    env.pop("HTTPS", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("enabled", "disabled", "workers"),
    [(0, 0, 4), (1, 3, 4), (2, 0, 4), (10, 1, 12), (70, 0, 64)],
    ids=["none", "one-enabled", "two", "ten-and-a-disabled-one", "capped"],
)
def test_it_sizes_the_cluster_to_the_enabled_accounts_plus_two(tmp_path, enabled, disabled, workers):
    accounts = [{"id": f"a{n}", "mode": "paper"} for n in range(enabled)]
    accounts += [{"id": f"off{n}", "mode": "paper", "enabled": False} for n in range(disabled)]
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps({"accounts": accounts}))

    shown = show(
        "settings.Q_WORKERS, settings.Q_CLUSTER['workers'], settings.Q_CLUSTER['queue_limit']",
        tmp_path=tmp_path,
        ORDER_SCHEDULER_ACCOUNTS_FILE=str(accounts_file),
    )

    assert shown == f"{workers} {workers} {workers * 2}"


def test_it_takes_q_workers_as_given_and_4_without_a_readable_accounts_file(tmp_path):
    assert show("settings.Q_WORKERS", tmp_path=tmp_path, Q_WORKERS="3") == "3"
    assert show("settings.Q_WORKERS", tmp_path=tmp_path, ORDER_SCHEDULER_ACCOUNTS_FILE=str(tmp_path / "no.json")) == "4"
    (tmp_path / "bad.json").write_text("{not json")
    assert (
        show("settings.Q_WORKERS", tmp_path=tmp_path, ORDER_SCHEDULER_ACCOUNTS_FILE=str(tmp_path / "bad.json")) == "4"
    )


def test_it_limits_submits_exports_and_statistics_per_user_by_default(tmp_path):
    shown = show("settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']", tmp_path=tmp_path)

    assert shown == "{'submit': '600/min', 'export': '6/min', 'stats': '120/min'}"


def test_it_gives_postgresql_statements_a_timeout(tmp_path):
    url = "postgres://orders@db.example:5432/orders"

    default = show("settings.DATABASES['default']['OPTIONS']", tmp_path=tmp_path, DATABASE_URL=url)
    off = show(
        "settings.DATABASES['default']['OPTIONS']", tmp_path=tmp_path, DATABASE_URL=url, DATABASE_STATEMENT_TIMEOUT="0"
    )

    assert default == "{'options': '-c statement_timeout=30000'}"
    assert off == "{'options': '-c statement_timeout=0'}"


def test_it_takes_a_plain_http_telegram_server_only_when_allowed(tmp_path):
    shown = show(
        "settings.TELEGRAM['API_BASE_URL']",
        tmp_path=tmp_path,
        TELEGRAM_API_BASE_URL="http://127.0.0.1:8081",
        ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL="1",
    )

    assert shown == "http://127.0.0.1:8081"
