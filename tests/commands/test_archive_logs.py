import gzip
import json
import threading
import zlib
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from orders.models import Order, OrderStatus
from orders.services.journal import journal_append, journal_path


def journal_lines(day, ids) -> bytes:
    return b"".join(json.dumps({"request_id": i, "day": str(day)}).encode() + b"\n" for i in ids)


def archive(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("archive_logs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def members(path) -> list[bytes]:
    """The decompressed content of each gzip member of the file, in order."""
    data, found = path.read_bytes(), []
    while data:
        inflater = zlib.decompressobj(31)
        found.append(inflater.decompress(data))
        assert inflater.eof
        data = inflater.unused_data
    return found


def test_it_gzips_the_files_older_than_days_and_leaves_the_recent_ones(journal_dir):
    today = timezone.localdate()
    journal_dir.mkdir()
    contents = {}
    for age in (0, 1, 7, 8, 30):
        day = today - timedelta(days=age)
        contents[age] = journal_lines(day, [f"ORD_{age}_{i}" for i in range(3)])
        journal_path(day).write_bytes(contents[age])
    (journal_dir / "notes.txt").write_text("not a journal")

    out, err = archive("--older-than", "7")

    old = [today - timedelta(days=30), today - timedelta(days=8)]
    assert out.splitlines() == [
        f"archived executions_{day:%Y%m%d}.jsonl ({len(contents[(today - day).days])} bytes) "
        f"into executions_{day:%Y%m%d}.jsonl.gz"
        for day in old
    ]
    assert err == ""
    assert files(journal_dir) == sorted(
        ["notes.txt"]
        + [f"executions_{day:%Y%m%d}.jsonl.gz" for day in old]
        + [f"executions_{today - timedelta(days=age):%Y%m%d}.jsonl" for age in (0, 1, 7)]
    )
    for day in old:
        assert gzip.decompress(journal_path(day).with_suffix(".jsonl.gz").read_bytes()) == contents[(today - day).days]
    for age in (0, 1, 7):
        assert journal_path(today - timedelta(days=age)).read_bytes() == contents[age]


def test_it_never_archives_today_even_with_zero_days(journal_dir):
    today = timezone.localdate()
    journal_dir.mkdir()
    journal_path(today).write_bytes(journal_lines(today, ["a"]))
    journal_path(today - timedelta(days=1)).write_bytes(journal_lines(today, ["b"]))

    archive("--older-than", "0")

    assert files(journal_dir) == [
        f"executions_{today - timedelta(days=1):%Y%m%d}.jsonl.gz",
        f"executions_{today:%Y%m%d}.jsonl",
    ]


@pytest.mark.parametrize("time_zone", ["Etc/GMT-14", "Etc/GMT+12"])  # UTC+14 and UTC-12
def test_it_reads_the_day_in_the_configured_time_zone(journal_dir, settings, time_zone):
    # At any moment the local date of one of these zones differs from the UTC date.
    settings.TIME_ZONE = time_zone
    today = timezone.localdate()
    journal_dir.mkdir()
    journal_path(today).write_bytes(b"today\n")
    journal_path(today - timedelta(days=1)).write_bytes(b"yesterday\n")

    archive("--older-than", "0")

    assert files(journal_dir) == [
        f"executions_{today - timedelta(days=1):%Y%m%d}.jsonl.gz",
        f"executions_{today:%Y%m%d}.jsonl",
    ]


def test_it_appends_to_an_existing_archive_of_the_same_day(journal_dir):
    day = timezone.localdate() - timedelta(days=10)
    journal_dir.mkdir()
    earlier, later = journal_lines(day, ["a1", "a2"]), journal_lines(day, ["b1"])
    journal_path(day).with_suffix(".jsonl.gz").write_bytes(gzip.compress(earlier))
    journal_path(day).write_bytes(later)

    archive("--older-than", "7")
    journal_path(day).write_bytes(journal_lines(day, ["c1"]))  # a late line for that day
    archive("--older-than", "7")

    assert files(journal_dir) == [f"executions_{day:%Y%m%d}.jsonl.gz"]
    assert members(journal_path(day).with_suffix(".jsonl.gz")) == [earlier, later, journal_lines(day, ["c1"])]


@pytest.mark.parametrize("crashes", [1, 3])
def test_it_takes_only_the_new_lines_after_crashes_between_rename_and_removal(journal_dir, crashes):
    # The state an archiver leaves when it dies after renaming the new .gz into place but
    # before removing the journal file, after which workers appended more lines; and the
    # state after a further run that died at the same point, and so on.
    day = timezone.localdate() - timedelta(days=10)
    journal_dir.mkdir()
    gz = journal_path(day).with_suffix(".jsonl.gz")
    older = journal_lines(day, ["x"])
    merged = journal_lines(day, ["a", "b"])
    gz.write_bytes(gzip.compress(older) + gzip.compress(merged))
    for crash in range(1, crashes):
        merged += journal_lines(day, [f"c{crash}"])
        journal_path(day).write_bytes(merged)
        archive("--older-than", "7")
        # the run got as far as the rename: put the journal file back as it was
        assert members(gz) == [older, merged]
    appended = journal_lines(day, ["z"])
    journal_path(day).write_bytes(merged + appended)

    out, _ = archive("--older-than", "7")

    assert f"({len(appended)} bytes)" in out
    assert members(gz) == [older, merged + appended]
    assert not journal_path(day).exists()


def test_it_reports_a_corrupt_archive_and_leaves_both_files_untouched(journal_dir):
    today = timezone.localdate()
    broken_day, good_day = today - timedelta(days=20), today - timedelta(days=21)
    journal_dir.mkdir()
    journal_path(broken_day).with_suffix(".jsonl.gz").write_bytes(b"\x1f\x8bnot really gzip")
    journal_path(broken_day).write_bytes(b"line\n")
    truncated = gzip.compress(journal_lines(good_day, range(500)))[:-20]
    journal_path(good_day + timedelta(days=2)).with_suffix(".jsonl.gz").write_bytes(truncated)
    journal_path(good_day + timedelta(days=2)).write_bytes(b"other\n")
    journal_path(good_day).write_bytes(b"fine\n")

    with pytest.raises(CommandError) as failure:
        archive("--older-than", "7")

    assert str(failure.value) == "2 journal file(s) could not be archived (left as they were)"
    assert journal_path(broken_day).read_bytes() == b"line\n"
    assert journal_path(broken_day).with_suffix(".jsonl.gz").read_bytes() == b"\x1f\x8bnot really gzip"
    assert journal_path(good_day + timedelta(days=2)).with_suffix(".jsonl.gz").read_bytes() == truncated
    assert gzip.decompress(journal_path(good_day).with_suffix(".jsonl.gz").read_bytes()) == b"fine\n"


@pytest.mark.parametrize("args, message", [(["--older-than", "-1"], "--older-than must be 0 or more days, got -1"),
                                           (["--older-than", "week"], "invalid int value: 'week'")])  # fmt: skip
def test_it_refuses_a_bad_age_with_one_line_and_touches_nothing(journal_dir, args, message):
    day = timezone.localdate() - timedelta(days=30)
    journal_dir.mkdir()
    journal_path(day).write_bytes(b"kept\n")

    with pytest.raises(CommandError) as failure:
        archive(*args)

    assert message in str(failure.value) and "\n" not in str(failure.value)
    assert files(journal_dir) == [f"executions_{day:%Y%m%d}.jsonl"]


def finished_order(request_id: str, finished_at: datetime) -> Order:
    """An order as the execution service hands it to the journal (not saved: the
    journal only formats it)."""
    return Order(
        request_id=request_id,
        client_order_id=f"c{request_id}",
        account_id="account_main",
        symbol="BTC/USDT:USDT",
        side="buy",
        order_type="market",
        amount=Decimal("0.001"),
        leverage=10,
        status=OrderStatus.SUCCESS,
        order_id="1",
        created_at=finished_at,
        started_at=finished_at,
        finished_at=finished_at,
    )


def test_it_loses_and_duplicates_no_line_while_workers_keep_appending(journal_dir):
    day = timezone.localdate() - timedelta(days=3)
    finished_at = timezone.make_aware(datetime.combine(day, time(12)))
    writers, per_writer = 3, 400
    errors = []

    def write(worker: int) -> None:
        try:
            for i in range(per_writer):
                journal_append(order=finished_order(f"w{worker}-{i}", finished_at))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    runs = 0
    while any(thread.is_alive() for thread in threads):
        archive("--older-than", "1")
        runs += 1
    for thread in threads:
        thread.join()
    archive("--older-than", "1")

    assert errors == []
    assert files(journal_dir) == [f"executions_{day:%Y%m%d}.jsonl.gz"]
    archived = gzip.decompress(journal_path(day).with_suffix(".jsonl.gz").read_bytes()).decode().splitlines()
    counts = Counter(json.loads(line)["request_id"] for line in archived)
    expected = {f"w{w}-{i}" for w in range(writers) for i in range(per_writer)}
    assert set(counts) == expected
    assert [rid for rid, n in counts.items() if n != 1] == []
    assert runs > 1


@pytest.mark.django_db
def test_it_runs_daily_from_a_django_q2_schedule(journal_dir, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "ARCHIVE_DAYS": 2}
    today = timezone.localdate()
    journal_dir.mkdir()
    journal_path(today - timedelta(days=3)).write_bytes(b"old\n")
    journal_path(today - timedelta(days=2)).write_bytes(b"recent\n")

    schedule = Schedule.objects.get(name="order-scheduler-archive-logs")
    result = import_string(schedule.func)()

    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
    assert timezone.localtime(schedule.next_run).time() == time(0, 15)
    assert result == [f"executions_{today - timedelta(days=3):%Y%m%d}.jsonl"]
    assert files(journal_dir) == [
        f"executions_{today - timedelta(days=3):%Y%m%d}.jsonl.gz",
        f"executions_{today - timedelta(days=2):%Y%m%d}.jsonl",
    ]


@pytest.mark.django_db
def test_its_scheduled_task_fails_visibly_when_a_file_cannot_be_archived(journal_dir):
    day = timezone.localdate() - timedelta(days=30)
    journal_dir.mkdir()
    journal_path(day).with_suffix(".jsonl.gz").write_bytes(b"not gzip")
    journal_path(day).write_bytes(b"kept\n")
    task = import_string(Schedule.objects.get(name="order-scheduler-archive-logs").func)

    with pytest.raises(RuntimeError) as failure:
        task()

    assert str(failure.value).startswith(f"executions_{day:%Y%m%d}.jsonl: executions_{day:%Y%m%d}.jsonl.gz is not")
    assert journal_path(day).read_bytes() == b"kept\n"
