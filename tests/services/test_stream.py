"""The live stream's events (orders.services.stream); served end to end in tests/api/test_events.py."""

from datetime import UTC, datetime

from django.utils import timezone

from orders.representation import iso_datetime
from orders.services.stream import COLUMNS, event_payload


def test_an_event_tells_its_time_as_the_api_tells_an_orders(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    at = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    row = dict.fromkeys(COLUMNS, "") | {"id": 7, "at": at, "details": None}

    with timezone.override("Asia/Shanghai"):
        payload = event_payload(row)

    assert payload["at"] == "2026-03-01T09:30:00+08:00" == iso_datetime(at, timezone.get_current_timezone())
    assert iso_datetime(at, UTC) == "2026-03-01T01:30:00Z"
