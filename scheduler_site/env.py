"""Strict helpers for reading settings from the environment.

Every helper raises ImproperlyConfigured naming the variable, so a bad value stops
start-up with one readable line instead of failing later somewhere else.
"""

import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate: N/second, N/minute, N/hour or N/day (s, min, h, d)."""
    value = env_str(name, default) or default
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or not period or period[0] not in "smhd":
        raise ImproperlyConfigured(f"{name} must look like 1200/min (N per s, min, h or d), got {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name} is not a known time zone: {value!r}") from None
    return value


def env_path(name: str, default: Path, base: Path) -> Path:
    raw = env_str(name)
    if not raw:
        return default
    path = Path(raw)
    return path if path.is_absolute() else base / path


def secret_key(name: str, key_file: Path) -> str:
    """The SECRET_KEY from the environment, else one generated once into key_file."""
    value = env_str(name)
    if value:
        return value
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def env_url(name: str, default: str) -> str:
    """An http(s) base URL without a trailing slash, query or fragment."""
    value = (env_str(name, default) or default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        # The value is not echoed: a proxy URL may carry credentials.
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// base URL without query or fragment")
    return value


def env_matching(name: str, pattern: str, *, what: str, secret: bool = False) -> str:
    """Empty, or a value matching `pattern` in full. A secret's value is never echoed."""
    value = env_str(name)
    if value and not re.fullmatch(pattern, value):
        shown = "value not shown" if secret else f"got {value!r}"
        raise ImproperlyConfigured(f"{name} must be {what} ({shown})")
    return value


def env_levels(name: str, defaults: dict[str, str], levels: tuple[str, ...]) -> dict[str, str]:
    """`key=level,key=level` overriding `defaults`; every key must be one of the
    defaults' keys and every level one of `levels`."""
    result = dict(defaults)
    for item in os.environ.get(name, "").split(","):
        if not item.strip():
            continue
        key, sep, level = (part.strip().lower() for part in item.partition("="))
        if not sep or key not in defaults:
            raise ImproperlyConfigured(
                f"{name}: {item.strip()!r} is not <event>=<level>; events: {', '.join(defaults)}"
            )
        if level not in levels:
            raise ImproperlyConfigured(f"{name}: level for {key} must be one of {', '.join(levels)}, got {level!r}")
        result[key] = level
    return result
