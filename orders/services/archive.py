"""Archiving of the execution journal: old day files gzipped beside it.

Archiving shares the journal's locking protocol (orders.services.journal): a day's file
is only read, compressed and removed under the same exclusive flock that every journal
write takes, so no line is ever lost or written twice."""

import fcntl
import gzip
import hashlib
import logging
import os
import re
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


class ArchiveError(Exception):
    """A journal file that cannot be archived (corrupt .gz, changed underneath); one
    readable line."""


JOURNAL_NAME_RE = re.compile(r"^executions_(\d{8})\.jsonl$")
STALE_TEMP_SECONDS = 3600


@dataclass
class ArchiveReport:
    archived: list[tuple[str, int]] = field(default_factory=list)  # (journal file, bytes moved into its .gz)
    problems: dict[str, str] = field(default_factory=dict)  # file name -> why it was left as it was


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_member(path: Path) -> tuple[int, int, bytes]:
    """Where the last gzip member of `path` starts (its byte offset), and the length and
    SHA-256 of its decompressed content; (0, 0, b"") for an empty file. Raises
    ArchiveError if the file is corrupt or truncated."""
    last = (0, 0, b"")
    start = offset = 0  # offset: where the current block begins in the file
    size, digest, inside = 0, hashlib.sha256(), False
    inflater = zlib.decompressobj(31)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            data = block
            while data:
                inside = True
                try:
                    out = inflater.decompress(data)
                except zlib.error as exc:
                    raise ArchiveError(f"{path.name} is not a valid gzip file: {exc}") from None
                size += len(out)
                digest.update(out)
                if not inflater.eof:
                    break
                last = (start, size, digest.digest())
                data = inflater.unused_data
                start = offset + len(block) - len(data)
                size, digest, inside = 0, hashlib.sha256(), False
                inflater = zlib.decompressobj(31)
            offset += len(block)
    if inside:
        raise ArchiveError(f"{path.name} is truncated")
    return last


def _prefix_digest(fd: int, length: int) -> bytes:
    digest, offset = hashlib.sha256(), 0
    while offset < length:
        block = os.pread(fd, min(1 << 20, length - offset), offset)
        if not block:
            break
        digest.update(block)
        offset += len(block)
    return digest.digest()


def _copy_prefix(source: IO[bytes], target: IO[bytes], length: int) -> None:
    while length > 0:
        block = source.read(min(1 << 20, length))
        if not block:
            raise ArchiveError(f"{source.name} changed while being archived")
        target.write(block)
        length -= len(block)


def _merge_locked(fd: int, path: Path) -> int:
    """Move the content of the locked journal file `path` (open as `fd`) into its .gz.
    Returns the number of bytes newly archived.

    The .gz is rewritten as a temporary file (its old members, then one member holding
    this whole file) and renamed over the old one; only once that rename is durable is
    the journal file removed. A crash in between leaves the journal file (perhaps grown
    since) next to a .gz whose last member is exactly the file's beginning. The next
    run recognises that and replaces the member with one holding the whole file, so
    the last member is always a beginning of the live file, however many runs crash.
    Journal lines are unique (each names an order that finished once), so a new file
    cannot begin with an earlier member's content by chance.
    """
    gz_path = path.with_name(path.name + ".gz")
    size = os.fstat(fd).st_size
    keep = archived = 0  # bytes of the old .gz to keep; bytes of this file it already holds
    if gz_path.exists():
        keep = gz_path.stat().st_size
        start, length, digest = _last_member(gz_path)
        if length and size >= length and _prefix_digest(fd, length) == digest:
            keep, archived = start, length
    if size > archived:
        tmp_fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{gz_path.name}.", suffix=".tmp")
        try:
            with os.fdopen(tmp_fd, "wb") as out:
                if keep:
                    with gz_path.open("rb") as old:
                        _copy_prefix(old, out, keep)
                mtime = int(os.fstat(fd).st_mtime)
                with gzip.GzipFile(filename=path.name, mode="wb", fileobj=out, mtime=mtime) as member:
                    offset = 0
                    while block := os.pread(fd, 1 << 20, offset):
                        member.write(block)
                        offset += len(block)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp_name, 0o640)
            os.replace(tmp_name, gz_path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
    os.unlink(path)
    _fsync_dir(path.parent)
    return size - archived


def archive_journal_file(*, path: Path) -> int | None:
    """Gzip one journal file into `<name>.gz` (appending to an existing one) and remove
    it, under the journal's exclusive lock. Returns the bytes moved, None if the file
    is gone (another archiver took it)."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:
                continue  # archived while we waited; a writer may have started a new file
            return _merge_locked(fd, path)
        finally:
            os.close(fd)


def archive_journals(*, older_than_days: int, today: date | None = None, log_dir: Path | None = None) -> ArchiveReport:
    """Gzip every `executions_YYYYMMDD.jsonl` whose day (in the configured time zone) is
    more than `older_than_days` days before today. Today's file is never archived. A
    file that cannot be archived is reported and left untouched; the others go on."""
    if older_than_days < 0:
        raise ArchiveError(f"--older-than must be 0 or more days, got {older_than_days}")
    today = today or timezone.localdate()
    log_dir = Path(log_dir or settings.ORDER_SCHEDULER["LOG_DIR"])
    report = ArchiveReport()
    if not log_dir.is_dir():
        return report
    cutoff = today - timedelta(days=older_than_days)
    for path in sorted(log_dir.iterdir()):
        match = JOURNAL_NAME_RE.match(path.name)
        if path.name.startswith(".executions_") and path.name.endswith(".tmp"):
            _remove_stale_temp(path)
        if not match:
            continue
        try:
            day = datetime.strptime(match[1], "%Y%m%d").date()
        except ValueError:
            report.problems[path.name] = "not a real date in the file name; left as it is"
            continue
        if day >= cutoff:
            continue
        try:
            moved = archive_journal_file(path=path)
        except (OSError, ArchiveError) as exc:
            logger.error("archiving %s failed: %s", path, exc)
            report.problems[path.name] = str(exc)
            continue
        if moved is not None:
            report.archived.append((path.name, moved))
    return report


def _remove_stale_temp(path: Path) -> None:
    """A temporary .gz left by an archiver that crashed: never renamed, so never part of
    the archive (the journal file it was made from is still there)."""
    try:
        if time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS:
            path.unlink()
    except OSError:
        pass
