"""Days, hours and time bounds: storage is UTC; days and hours follow the configured time
zone (TIME_ZONE). The API, the dashboard and the commands all read a time bound here."""

import re
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from orders.selectors.errors import QueryError


def day_bounds(day) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the configured time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)
    return start, end


# A bound past the calendar's edge (year 1 or 9999 with an offset) is held at the edge,
# so a time window still means what it says.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def parse_time_bound(value: str, *, name: str) -> datetime:
    """An ISO 8601 date or date-time (a query parameter or a command's option `name`) as
    an aware datetime. A date alone means that day's midnight, and a date-time without an
    offset a wall-clock time, both in the configured time zone. Raises QueryError(name)
    when `value` is neither. The API, the dashboard and the commands all read times here."""
    text = str(value).strip().upper()  # RFC 3339 allows a lowercase t and z
    # An unencoded "+" in a query string arrives as a space: "...T15:30:00 08:00".
    text = re.sub(r"(T\S+) (\d\d:?\d\d)$", r"\1+\2", text)
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        day = moment = None
    if day is None and moment is None:
        raise QueryError(
            name, f"{name} must be an ISO 8601 date or datetime (2026-02-21 or 2026-02-21T15:30), got {value!r}"
        )
    try:
        if day is not None:
            return day_bounds(day)[0]
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_current_timezone())
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return EARLIEST if (day or moment).year < 5000 else LATEST


def hour_bounds(day) -> list[datetime]:
    """The 25 boundaries of a day's 24 local wall-clock hours, in UTC. On the day a
    daylight-saving change happens one hour is empty (skipped) or two hours long
    (repeated), so the 24 buckets always add up to the day."""
    tz = timezone.get_current_timezone()
    bounds = [datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC) for hour in range(24)]
    return [*bounds, day_bounds(day)[1].astimezone(UTC)]
