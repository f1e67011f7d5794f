"""A local fake of the Telegram Bot API, for tests: POST /bot<token>/sendMessage.

A standard-library HTTP server on 127.0.0.1 (port 0: the OS picks one; a restart after
`stop()` reuses it). It checks the token, takes a JSON or form body, validates the HTML
the way Telegram does (known tags only, balanced, `& < >` escaped, 4096 characters) and
records every request and every delivered message with the time it arrived.

Injectable trouble: `rate_limit(retry_after)` (429 with parameters.retry_after),
`fail(status)` (5xx), `hang()` (hold replies until `release()` or `stop()`, i.e. past
the client's timeout) and `stop()` (down: connections refused until `start()`).
"""

import html
import json
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler",
        "blockquote", "tg-emoji"}  # fmt: skip
TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)((?:\s[^<>]*)?)>")
BAD_AMP_RE = re.compile(r"&(?!(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);)")


@dataclass
class Message:
    message_id: int
    chat_id: str
    text: str
    parse_mode: str
    disable_notification: bool
    received_at: float

    @property
    def plain(self) -> str:
        """The text as the chat shows it: tags removed, entities decoded."""
        return html.unescape(TAG_RE.sub("", self.text))


@dataclass
class Request:
    path: str
    received_at: float
    status: int | None = None  # None: never answered (hung, or the fake went down)
    text: str = ""


def html_error(text: str) -> str | None:
    """Why Telegram would refuse `text` in HTML parse mode, or None."""
    stack = []
    for match in TAG_RE.finditer(text):
        closing, name = match.group(1), match.group(2).lower()
        if name not in TAGS:
            return f'Unsupported start tag "{name}"'
        if closing:
            if not stack or stack.pop() != name:
                return f'Unexpected end tag "{name}"'
        else:
            stack.append(name)
    if stack:
        return f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
    rest = TAG_RE.sub("", text)
    if "<" in rest or ">" in rest:
        return "Unsupported start tag or unescaped < or >"
    if BAD_AMP_RE.search(rest):
        return "Unescaped &"
    return None


class FakeTelegram:
    def __init__(self, token: str = "123456789:TEST-fake-bot-token_0123456789"):
        self.token = token
        self.port = 0
        self.messages: list[Message] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._script: list[tuple[int, dict]] = []  # replies to give before normal service
        self._hanging = False
        self._holding = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- control -------------------------------------------------------------------

    def start(self) -> "FakeTelegram":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._release.clear()
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections; requests being held are dropped unanswered."""
        server, self._server = self._server, None
        self._hanging = False
        self._release.set()
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rate_limit(self, retry_after: int, times: int = 1) -> None:
        reply = {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                 "parameters": {"retry_after": retry_after}}  # fmt: skip
        with self._lock:
            self._script += [(429, reply)] * times

    def fail(self, status: int = 502, times: int = 1) -> None:
        reply = {"ok": False, "error_code": status, "description": HTTPStatus(status).phrase}
        with self._lock:
            self._script += [(status, reply)] * times

    def hang(self) -> None:
        """Hold every reply past any client timeout, until release() (then answered as
        usual, though the client may have given up) or stop() (dropped unanswered)."""
        self._release.clear()
        self._hanging = True

    def release(self) -> None:
        self._hanging = False
        self._release.set()

    def hung(self) -> int:
        """Requests being held right now."""
        with self._lock:
            return self._holding

    # --- serving -------------------------------------------------------------------

    def answer(self, path: str, body: dict) -> tuple[int, dict] | None:
        """The reply to a request, or None to hang up without one."""
        request = Request(path=path, received_at=time.time(), text=str(body.get("text", "")))
        with self._lock:
            self.requests.append(request)
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if not match or match.group(1) != self.token:
            return self._reply(request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if match.group(2) != "sendMessage":
            return self._reply(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if self._hanging:
            with self._lock:
                self._holding += 1
            self._release.wait(timeout=120)
            with self._lock:
                self._holding -= 1
            if self._server is None:  # went down meanwhile: hang up unanswered
                return None
        with self._lock:
            scripted = self._script.pop(0) if self._script else None
        if scripted:
            return self._reply(request, *scripted)
        text = body.get("text")
        if not body.get("chat_id"):
            return self._bad(request, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return self._bad(request, "Bad Request: message text is empty")
        if body.get("parse_mode") == "HTML":
            problem = html_error(text)
            if problem:
                return self._bad(request, f"Bad Request: can't parse entities: {problem}")
            plain = html.unescape(TAG_RE.sub("", text))
        else:
            plain = text
        if len(plain) > 4096:
            return self._bad(request, "Bad Request: message is too long")
        silent = body.get("disable_notification") in (True, "true", "True", "1")
        with self._lock:
            message = Message(
                message_id=len(self.messages) + 1,
                chat_id=str(body["chat_id"]),
                text=text,
                parse_mode=str(body.get("parse_mode") or ""),
                disable_notification=silent,
                received_at=request.received_at,
            )
            self.messages.append(message)
        result = {
            "message_id": message.message_id,
            "chat": {"id": message.chat_id},
            "text": plain,
        }
        return self._reply(request, 200, {"ok": True, "result": result})

    def _bad(self, request: Request, description: str) -> tuple[int, dict]:
        return self._reply(request, 400, {"ok": False, "error_code": 400, "description": description})

    @staticmethod
    def _reply(request: Request, status: int, body: dict) -> tuple[int, dict]:
        request.status = status
        return status, body


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = json.loads(raw or "{}")
            except ValueError:
                body = {}
        else:
            body = {key: values[-1] for key, values in parse_qs(raw).items()}
        answer = self.fake.answer(self.path, body if isinstance(body, dict) else {})
        if answer is None:
            self.close_connection = True
            return
        status, reply = answer
        data = json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up already
            pass

    def log_message(self, format, *args):  # the request line holds the token: never print it
        pass
