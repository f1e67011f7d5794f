"""Secrets never reach a log line or an error page.

`known_secrets()` is every secret this process could hold: SECRET_KEY, the Telegram bot
token, the database and Redis passwords, and the values of the environment variables
that the accounts file names for API keys, secrets and passphrases (plus any variable
whose name says it is one: *KEY*, *SECRET*, *PASS*, *TOKEN*). `SecretScrubFilter`, on
every log handler, replaces them in the message, its arguments, the traceback and the
stack; `ScrubbingExceptionReporter` does the same for Django's DEBUG error page, whose
settings filter also hides every URL-like setting (DATABASE_URL, REDIS_URL, cache
locations), which can carry a password of their own."""

import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = "********"
SECRET_NAME_RE = re.compile(r"KEY|SECRET|PASS|TOKEN|SIGNATURE|CREDENTIAL", re.IGNORECASE)
# A secret shorter than this is not scrubbed: "1" or "on" would blot out every log line.
MIN_LENGTH = 6
_accounts_file_cache: dict = {}


def _account_variable_names() -> set[str]:
    """The *_env names of the accounts file, re-read when the file changes."""
    path = Path(settings.ORDER_SCHEDULER["ACCOUNTS_FILE"])
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return set()
    if _accounts_file_cache.get("key") != (str(path), mtime):
        names = set()
        try:
            for entry in json.loads(path.read_text(encoding="utf-8")).get("accounts", []):
                if isinstance(entry, dict):
                    names |= {entry.get(f) for f in ("api_key_env", "secret_env", "passphrase_env")}
        except (OSError, ValueError, AttributeError):
            pass
        _accounts_file_cache.update(key=(str(path), mtime), names={n for n in names if isinstance(n, str)})
    return _accounts_file_cache["names"]


def _url_password(url: str | None) -> str:
    try:
        return unquote(urlsplit(url or "").password or "")
    except ValueError:
        return ""


def known_secrets() -> list[str]:
    """Every secret value, longest first (so a secret containing another is masked whole)."""
    values = {
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "TELEGRAM", {}).get("BOT_TOKEN", ""),
        settings.DATABASES.get("default", {}).get("PASSWORD") or "",
        _url_password(getattr(settings, "REDIS_URL", "")),
        _url_password(getattr(settings, "DATABASE_URL", "")),
    }
    names = _account_variable_names() | {name for name in os.environ if SECRET_NAME_RE.search(name)}
    values |= {os.environ.get(name, "") for name in names}
    return sorted((v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH), key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretScrubFilter(logging.Filter):
    """On a handler: the record leaves with every known secret masked. The message is
    rendered with its arguments first (a secret may be an argument), and the traceback
    formatted and scrubbed into exc_text, which formatters print instead of exc_info."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._scrub(record)
        except Exception:  # never let a record out unscrubbed: say what happened instead
            record.msg, record.args = f"log record withheld: it could not be scrubbed ({record.name})", None
            record.exc_info = record.exc_text = record.stack_info = None
        return True

    def _scrub(self, record: logging.LogRecord) -> None:
        secrets = known_secrets()
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep what can be kept
            message = str(record.msg)
        record.msg, record.args = scrub(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, secrets)


class ScrubbingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's DEBUG page and error reports: settings whose names look like a URL or a
    location are hidden along with Django's own list (API, TOKEN, KEY, SECRET, PASS,
    SIGNATURE, HTTP_COOKIE), and any known secret inside any other value is masked."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|LOCATION|REDIS|DSN|CREDENTIAL", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str) and value != self.cleansed_substitute:
            return scrub(value)
        return value


class ScrubbingExceptionReporter(ExceptionReporter):
    """The DEBUG error page (HTML and text) with every known secret masked wherever it
    shows: the exception's message, frame variables, request data, settings."""

    def get_traceback_html(self):
        return scrub(str(super().get_traceback_html()))

    def get_traceback_text(self):
        return scrub(str(super().get_traceback_text()))
