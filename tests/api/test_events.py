"""GET /api/order-scheduler/events: the live stream, over real HTTP (live_server) with a
real client (requests), reading the real events table."""

import json
import threading
from datetime import UTC, datetime

import pytest
import requests
from rest_framework.authtoken.models import Token

from orders.models import OrderEvent
from orders.services import stream
from tests.conftest import user_with_role
from tests.helpers import make_order

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def token(admin_user) -> str:
    return Token.objects.create(user=admin_user).key


class Events:
    """A Server-Sent Events client: what a strategy script or EventSource does."""

    def __init__(self, url: str, *, token: str | None, params=None, last_event_id: int | None = None):
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = requests.get(
            f"{url}/api/order-scheduler/events", params=params, headers=headers, stream=True, timeout=10
        )
        self._lines = self.response.iter_lines(chunk_size=1, decode_unicode=True) if self.ok else None

    @property
    def ok(self) -> bool:
        return self.response.status_code == 200

    def next(self) -> dict:
        """The next frame: {"id", "event", "data"} (comments and retry lines skipped)."""
        frame: dict = {}
        for line in self._lines:
            if not line:
                if "data" in frame:
                    frame.setdefault("event", "message")
                    return frame
                frame = {}
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                frame["id"] = int(value)
            elif name in ("event", "data"):
                frame[name] = value
        raise AssertionError("the stream ended")

    def until(self, event: str) -> tuple[list[dict], dict]:
        """Every order/service event before the first `event` frame, and that frame."""
        seen = []
        while True:
            frame = self.next()
            if frame["event"] == event:
                return seen, frame
            if frame["event"] == "message":
                seen.append(frame)

    def messages(self, count: int) -> list[dict]:
        out = []
        while len(out) < count:
            frame = self.next()
            if frame["event"] == "message":
                out.append(frame)
        return out

    def close(self):
        self.response.close()


def event(*, order=None, kind="status", account="account_main", **fields) -> OrderEvent:
    return OrderEvent.objects.create(
        kind=kind,
        order=order,
        account_id=order.account_id if order else account,
        actor=fields.pop("actor", "worker"),
        **fields,
    )


def ids(frames) -> list[int]:
    return [frame["id"] for frame in frames]


def test_it_refuses_anonymous_clients(live_server, accounts):
    response = requests.get(f"{live_server.url}/api/order-scheduler/events", stream=True, timeout=10)
    assert response.status_code == 401
    assert response.json()["success"] is False
    assert stream.hub.streams == 0


def test_it_refuses_a_bad_query_with_a_message_per_field(live_server, accounts, token):
    client = Events(live_server.url, token=token, params={"since": "-1", "heartbeat": "0", "acount": "x"})
    assert client.response.status_code == 400
    errors = client.response.json()["errors"]
    assert set(errors) == {"since", "heartbeat", "acount"}
    client = Events(live_server.url, token=token, params={}, last_event_id=None)
    client.close()
    response = requests.get(
        f"{live_server.url}/api/order-scheduler/events",
        headers={"Authorization": f"Token {token}", "Last-Event-ID": "abc"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["errors"]


def test_it_pushes_an_event_written_after_the_stream_opened(live_server, accounts, token):
    order = make_order(created_at=NOW, status="queued")
    client = Events(live_server.url, token=token)
    assert client.ok
    assert client.response.headers["Content-Type"].startswith("text/event-stream")
    _, ready = client.until("ready")
    written = event(order=order, from_status="queued", to_status="processing")
    (frame,) = client.messages(1)
    client.close()
    assert frame["id"] == written.id > ready["id"]
    data = json.loads(frame["data"])
    assert data["request_id"] == order.request_id
    assert data["kind"] == "status"
    assert (data["from_status"], data["to_status"]) == ("queued", "processing")
    assert data["strategy_name"] == "manual"


def test_it_resumes_after_a_reconnect_with_no_gap_and_no_duplicate(live_server, accounts, token):
    order = make_order(created_at=NOW, status="queued")
    first = [event(order=order, reason=f"before {n}") for n in range(3)]
    client = Events(live_server.url, token=token, params={"since": str(first[0].id - 1)})
    caught_up, ready = client.until("ready")
    assert ids(caught_up) == [e.id for e in first]
    live = [event(order=order, reason=f"live {n}") for n in range(2)]
    got = client.messages(2)
    assert ids(got) == [e.id for e in live]
    client.close()  # the connection drops; events go on meanwhile
    missed = [event(order=order, reason=f"missed {n}") for n in range(4)]

    again = Events(live_server.url, token=token, last_event_id=got[-1]["id"])
    # The missed events come from the table, or live if this process's tail had not
    # read them yet when the client came back: either way each once, in order.
    replayed, _ = again.until("ready")
    later = event(order=order, reason="after the reconnect")
    rest = again.messages(len(missed) + 1 - len(replayed))
    again.close()
    assert ids(replayed + rest) == [e.id for e in missed] + [later.id]
    everything = ids(caught_up + got + replayed + rest)
    assert everything == list(OrderEvent.objects.order_by("id").values_list("id", flat=True))


def test_it_shows_a_limited_user_only_its_accounts(live_server, accounts):
    user = user_with_role("alice", "viewer", accounts=["account_main"])
    key = Token.objects.create(user=user).key
    mine = make_order(created_at=NOW, status="queued", account="account_main")
    theirs = make_order(created_at=NOW, status="queued", account="account_hedge")
    start = OrderEvent.objects.create(kind="trading_resumed", actor="system").id
    refused = Events(live_server.url, token=key, params={"account": "account_hedge"})
    assert refused.response.status_code == 403

    client = Events(live_server.url, token=key, params={"since": str(start)})
    visible = [
        event(order=theirs),
        event(order=mine),
        event(kind="account_paused", account="account_hedge", actor="operator"),
        event(kind="account_paused", account="account_main", actor="operator"),
        event(kind="trading_paused", account="", actor="operator"),
    ]
    got = client.messages(3)
    client.close()
    assert ids(got) == [visible[1].id, visible[3].id, visible[4].id]


def test_it_narrows_by_strategy_and_request_id(live_server, accounts, token):
    a = make_order(created_at=NOW, status="queued", strategy_name="grid")
    b = make_order(created_at=NOW, status="queued", strategy_name="trend")
    start = OrderEvent.objects.create(kind="created", order=a, account_id=a.account_id, actor="user").id
    for o in (a, b, a, b):
        event(order=o)
    desk = event(kind="trading_paused", account="", actor="operator")
    by_strategy = Events(live_server.url, token=token, params={"since": str(start), "strategy": "trend"})
    caught, _ = by_strategy.until("ready")
    by_strategy.close()
    assert [f["id"] for f in caught] == [start + 2, start + 4, desk.id]
    by_order = Events(live_server.url, token=token, params={"since": "0", "request_id": a.request_id})
    caught, _ = by_order.until("ready")
    by_order.close()
    assert [f["id"] for f in caught] == [start, start + 1, start + 3, desk.id]


def test_it_tells_a_client_too_far_behind_to_reread_the_list(live_server, accounts, token):
    OrderEvent.objects.bulk_create(
        [OrderEvent(kind="trading_resumed", actor="system") for _ in range(stream.MAX_BACKLOG + 5)]
    )
    head = OrderEvent.objects.order_by("-id").first().id
    client = Events(live_server.url, token=token, params={"since": str(head - stream.MAX_BACKLOG - 3)})
    frame = client.next()
    assert frame["event"] == "reset"
    assert frame["id"] == head
    assert json.loads(frame["data"])["reason"] == "too_far_behind"
    _, ready = client.until("ready")
    assert ready["id"] == head  # following from the present
    fresh = event(kind="trading_paused", account="", actor="operator")
    assert ids(client.messages(1)) == [fresh.id]
    client.close()


def test_it_answers_an_unknown_future_id_with_a_reset(live_server, accounts, token):
    event(kind="trading_paused", account="", actor="operator")
    client = Events(live_server.url, token=token, last_event_id=10**9)
    frame = client.next()
    client.close()
    assert frame["event"] == "reset"


def test_it_sends_heartbeats_that_carry_the_resume_point(live_server, accounts, token):
    make_order(created_at=NOW, status="queued", account="account_hedge")
    client = Events(live_server.url, token=token, params={"heartbeat": "1", "account": "account_main"})
    _, ready = client.until("ready")
    skipped = event(kind="account_paused", account="account_hedge", actor="operator")
    beat = client.next()
    client.close()
    assert beat["event"] == "heartbeat"
    assert beat["id"] == skipped.id  # a reconnect will not read the skipped event again


def test_it_ends_every_stream_when_the_server_stops(live_server, accounts, token):
    client = Events(live_server.url, token=token)
    client.until("ready")
    frames = []
    reader = threading.Thread(target=lambda: frames.append(client.next()))
    reader.start()
    stream.hub.close()
    reader.join(timeout=5)
    assert frames and frames[0]["event"] == "shutdown"
    with pytest.raises(AssertionError, match="ended"):
        client.next()
    assert stream.hub.streams == 0


def test_it_never_passes_an_event_still_being_committed(live_server, accounts, token):
    """Ids are taken at insert: on PostgreSQL a later id can commit first. The stream
    holds back what follows a hole until the transaction that took it ends, so events
    still arrive in id order, none skipped (on SQLite the second writer simply waits)."""
    from django.db import connection, transaction

    client = Events(live_server.url, token=token, params={"heartbeat": "1"})
    client.until("ready")
    first_written, release = threading.Event(), threading.Event()
    ids_taken = {}

    def slow_writer():
        with transaction.atomic():
            ids_taken["slow"] = event(kind="trading_paused", account="", actor="operator").id
            first_written.set()
            release.wait(20)
        connection.close()

    def quick_writer():
        ids_taken["quick"] = event(kind="trading_resumed", account="", actor="operator").id
        connection.close()

    slow = threading.Thread(target=slow_writer)
    slow.start()
    first_written.wait(10)
    quick = threading.Thread(target=quick_writer)
    quick.start()
    quick.join(timeout=2)  # PostgreSQL commits it now; SQLite makes it wait for the slow one

    beat = client.next()  # a second with nothing to send: the slow event is not out yet
    release.set()
    slow.join(10)
    quick.join(20)
    got = client.messages(2)
    client.close()
    assert beat["event"] == "heartbeat" and beat["id"] < ids_taken["slow"]
    assert ids(got) == sorted(ids_taken.values()) == [ids_taken["slow"], ids_taken["quick"]]
