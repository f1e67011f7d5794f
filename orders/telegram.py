"""A minimal Telegram Bot API client (sendMessage only) on the standard library.

The bot token is part of every request URL (`/bot<token>/sendMessage`), and urllib's
exceptions carry that URL in their attributes and sometimes in their text. So nothing
leaves this module but TelegramError, whose message is written here and scrubbed of
the token, raised `from None` so no traceback shows the original exception.
"""

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from django.conf import settings

MAX_REPLY_BYTES = 64 * 1024


class TelegramError(Exception):
    """A failed send. `retry_after` is set when the Bot API asked us to slow down (429)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class BotConfig:
    token: str = field(repr=False)
    chat_id: str
    api_base_url: str
    timeout: float


def bot_config() -> BotConfig | None:
    """The configured bot, or None when Telegram is disabled (no token or chat id)."""
    conf = settings.TELEGRAM
    if not conf["BOT_TOKEN"] or not conf["CHAT_ID"]:
        return None
    return BotConfig(
        token=conf["BOT_TOKEN"], chat_id=conf["CHAT_ID"], api_base_url=conf["API_BASE_URL"], timeout=conf["TIMEOUT"]
    )


def scrub(text: str, token: str) -> str:
    return text.replace(token, "<bot-token>") if token else text


def send_message(*, bot: BotConfig, text: str, silent: bool) -> int:
    """Send one HTML message to the configured chat; returns Telegram's message id.
    Every network step is bounded by `bot.timeout`."""
    body = {
        "chat_id": bot.chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_notification": silent,
        "link_preview_options": {"is_disabled": True},
    }
    request = urllib.request.Request(
        f"{bot.api_base_url}/bot{bot.token}/sendMessage",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        try:
            with urllib.request.urlopen(request, timeout=bot.timeout) as response:
                status, raw = response.status, response.read(MAX_REPLY_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read(MAX_REPLY_BYTES)
    except TimeoutError:
        raise TelegramError(f"no answer from the Bot API within {bot.timeout:g}s") from None
    except urllib.error.URLError as exc:
        raise TelegramError(scrub(f"cannot reach the Bot API: {exc.reason}", bot.token)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise TelegramError(scrub(f"connection to the Bot API failed: {type(exc).__name__} {exc}", bot.token)) from None
    return _result(status, raw, bot.token)


def _result(status: int, raw: bytes, token: str) -> int:
    try:
        reply = json.loads(raw)
        if not isinstance(reply, dict):
            raise ValueError
    except ValueError:
        raise TelegramError(f"HTTP {status} from the Bot API with a reply that is not JSON") from None
    if status == 200 and reply.get("ok") is True:
        return int((reply.get("result") or {}).get("message_id") or 0)
    description = scrub(str(reply.get("description") or "no description"), token)[:300]
    parameters = reply.get("parameters") if isinstance(reply.get("parameters"), dict) else {}
    code = reply.get("error_code") or status
    if code == 429:
        try:
            retry_after = max(1.0, float(parameters.get("retry_after")))
        except (TypeError, ValueError):
            retry_after = 30.0  # a 429 without a usable hint: a safe pause
        raise TelegramError(f"HTTP 429 {description}", retry_after=retry_after)
    if parameters.get("migrate_to_chat_id"):
        description += f" (the group is now chat {parameters['migrate_to_chat_id']}: update TELEGRAM_CHAT_ID)"
    raise TelegramError(f"HTTP {code} {description}")
