"""Accounts come from the accounts file (JSON) and are synced into the database.

The file names the environment variables that hold each account's secrets; the secrets
themselves are read only when an order executes and are never stored or shown.
A bad entry is reported, naming the account, and skipped; the other accounts still sync.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from orders.models import Account, AccountMode, MarginMode
from orders.services.audit import audit_record
from orders.services.pacing import RATE_LIMIT_KEYS

ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# OKX's sites: global, EEA (my.okx.com), US (app.okx.com), and the AWS-hosted global.
OKX_HOSTS = ("www.okx.com", "okx.com", "my.okx.com", "eea.okx.com", "app.okx.com", "us.okx.com", "aws.okx.com")
SECRET_FIELDS = ("api_key_env", "secret_env", "passphrase_env")
LIMIT_KEYS = ("max_amount", "max_notional", "max_leverage")


class AccountsFileError(Exception):
    """The accounts file cannot be read at all."""


@dataclass
class SyncReport:
    synced: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # account id (or #index) -> message
    retired: list[str] = field(default_factory=list)


def read_accounts_file(path: Path | None = None) -> list:
    path = Path(path or settings.ORDER_SCHEDULER["ACCOUNTS_FILE"])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountsFileError(f"accounts file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise AccountsFileError(f"accounts file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
        raise AccountsFileError(f'accounts file {path} must be an object with an "accounts" list')
    return data["accounts"]


def _parse_entry(entry) -> dict:
    """The model fields of one entry; raises ValueError with a readable message."""
    if not isinstance(entry, dict):
        raise ValueError("must be an object")
    account_id = entry.get("id")
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        raise ValueError('"id" must be 1 to 64 letters, digits or _ . -')
    mode = entry.get("mode", AccountMode.PAPER)
    if mode not in AccountMode.values:
        raise ValueError(f'"mode" must be one of {", ".join(AccountMode.values)}, got {mode!r}')
    exchange = entry.get("exchange", "okx")
    if exchange != "okx":
        raise ValueError(f'"exchange" must be "okx", got {exchange!r}')
    margin_mode = entry.get("margin_mode", MarginMode.CROSS)
    if margin_mode not in (MarginMode.CROSS, MarginMode.ISOLATED):
        raise ValueError(f'"margin_mode" must be cross or isolated, got {margin_mode!r}')
    leverage = entry.get("default_leverage")
    if leverage is not None and not _whole_number(leverage, 1, 125):
        raise ValueError('"default_leverage" must be a whole number from 1 to 125')
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise ValueError('"options" must be an object')
    _check_options(options)
    for key in ("name", "hostname", "base_url", *SECRET_FIELDS):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ValueError(f'"{key}" must be a string')
    limits = entry.get("limits", {})
    if not isinstance(limits, dict):
        raise ValueError('"limits" must be an object')
    for key, value in limits.items():
        if key not in LIMIT_KEYS:
            raise ValueError(f'"limits" takes {", ".join(LIMIT_KEYS)}, not {key!r}')
        if not _positive_number(value):
            raise ValueError(f'"limits.{key}" must be a positive number')
    if "max_leverage" in limits and not (isinstance(limits["max_leverage"], int) and limits["max_leverage"] <= 125):
        raise ValueError('"limits.max_leverage" must be a whole number from 1 to 125')
    _check_endpoint(entry.get("hostname") or "www.okx.com", entry.get("base_url") or "")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError('"enabled" must be true or false')
    return {
        "id": account_id,
        "name": entry.get("name") or account_id,
        "exchange": exchange,
        "mode": mode,
        "api_key_env": entry.get("api_key_env") or "",
        "secret_env": entry.get("secret_env") or "",
        "passphrase_env": entry.get("passphrase_env") or "",
        "hostname": entry.get("hostname") or "www.okx.com",
        "base_url": entry.get("base_url") or "",
        "margin_mode": margin_mode,
        "default_leverage": leverage,
        "enabled": enabled,
        "options": options,
        "limits": limits,
    }


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _whole_number(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _prices(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _positive_number(v) for k, v in value.items())


def _rate_limits(value) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= set(RATE_LIMIT_KEYS)
        and all(_positive_number(v) for v in value.values())
    )


# Each option the file may set: its check, and what the message says it must be.
OPTIONS = {
    "position_mode": (lambda v: v in ("net", "long_short"), 'one of "net", "long_short"'),
    "market_types": (
        lambda v: isinstance(v, list) and bool(v) and set(v) <= {"spot", "swap", "future", "option"},
        'a list of "spot", "swap", "future", "option"',
    ),
    "timeout_ms": (lambda v: _whole_number(v, 100, 120_000), "a whole number of milliseconds from 100 to 120000"),
    "batch": (lambda v: isinstance(v, bool), "true or false"),
    "portfolio_margin": (lambda v: isinstance(v, bool), "true or false"),
    "rate_limits": (_rate_limits, f"an object of positive numbers with keys among {', '.join(RATE_LIMIT_KEYS)}"),
    "reference_prices": (_prices, "an object of positive prices by symbol"),
    "latency_ms": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 60_000,
        "a number of milliseconds from 0 to 60000",
    ),
    "max_amount": (lambda v: v is None or _positive_number(v), "a positive number or null"),
}


def _check_options(options: dict) -> None:
    """Every option is known and well formed: a misspelt key (`"bacth": false`) or a bad
    value would otherwise be ignored, or fail every drain of the account, instead of
    being reported here."""
    for key, value in options.items():
        if key not in OPTIONS:
            raise ValueError(f'"options" takes {", ".join(OPTIONS)}, not {key!r}')
        valid, must_be = OPTIONS[key]
        if not valid(value):
            raise ValueError(f'"options.{key}" must be {must_be}')


def _check_endpoint(hostname: str, base_url: str) -> None:
    """Credentials go only to OKX over https, unless ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL
    allows another endpoint (the test fake, a self-hosted gateway). The URL is never
    echoed: it could carry credentials of its own."""
    if base_url:
        message = '"base_url" must be an http(s) URL with a host and no credentials'
        try:
            parts = urlsplit(base_url)
            host = parts.hostname
        except ValueError:
            raise ValueError(message) from None
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            raise ValueError(message)
    if insecure_endpoint(hostname, base_url) and not settings.ORDER_SCHEDULER["ALLOW_INSECURE_BASE_URL"]:
        raise ValueError(
            f'"hostname" and "base_url" must be https on one of OKX\'s hosts ({", ".join(OKX_HOSTS)}); '
            "another endpoint needs ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL=1"
        )


def insecure_endpoint(hostname: str, base_url: str) -> bool:
    """True when an account talks to anything but https on an OKX host."""
    if base_url:
        try:
            parts = urlsplit(base_url)
            return parts.scheme != "https" or parts.hostname not in OKX_HOSTS
        except ValueError:
            return True
    return (hostname or "www.okx.com") not in OKX_HOSTS


def missing_secrets(fields: dict) -> list[str]:
    """Names of the environment variables an exchange account needs but lacks."""
    if fields["mode"] == AccountMode.PAPER:
        return []
    missing = []
    for key in SECRET_FIELDS:
        name = fields[key]
        if not name:
            missing.append(f'"{key}" not set in the accounts file')
        elif not os.environ.get(name):
            missing.append(f"environment variable {name} is not set")
    return missing


def sync_accounts(*, path: Path | None = None, actor: str = "") -> SyncReport:
    """Upsert the file's accounts. Accounts no longer in the file are kept (their
    orders reference them) but marked out of config, so they take no new orders."""
    report = SyncReport()
    entries = read_accounts_file(path)
    parsed: dict[str, dict] = {}
    for index, entry in enumerate(entries):
        label = entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else f"#{index}"
        try:
            fields = _parse_entry(entry)
        except ValueError as exc:
            report.problems[label] = str(exc)
            continue
        if fields["id"] in parsed:
            report.problems[label] = "listed twice"
            continue
        missing = missing_secrets(fields)
        fields["config_error"] = "; ".join(missing)
        if missing:
            report.problems[fields["id"]] = fields["config_error"]
        parsed[fields["id"]] = fields
    with transaction.atomic():
        for account_id, fields in parsed.items():
            Account.objects.update_or_create(pk=account_id, defaults={**fields, "in_config": True})
            report.synced.append(account_id)
        retired = Account.objects.filter(in_config=True).exclude(pk__in=list(parsed))
        report.retired = list(retired.values_list("pk", flat=True))
        retired.update(in_config=False)
        audit_record(
            action="account_sync",
            source=actor,
            target=str(path or settings.ORDER_SCHEDULER["ACCOUNTS_FILE"])[-128:],
            changes={"synced": report.synced, "retired": report.retired, "problems": report.problems},
        )
    from orders.exchanges import reset_exchanges

    reset_exchanges()
    return report
