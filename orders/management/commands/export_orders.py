"""Export orders as JSONL (the API's field names), to a file or standard output."""

import io
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.services.history import HistoryError, export_orders, parse_time_bound


class Command(BaseCommand):
    help = (
        "Write orders as JSON lines, oldest first, with the API's field names. Times without an offset, "
        "and dates (local midnight), are in the configured TIME_ZONE; --since is inclusive, --until exclusive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Orders submitted at or after this ISO 8601 date or datetime.")
        parser.add_argument("--until", help="Orders submitted before this ISO 8601 date or datetime.")
        parser.add_argument("--account", help="Only this account id.")
        parser.add_argument("--status", help="Only these statuses, comma-separated (e.g. success,failed).")
        parser.add_argument("--strategy", help="Only this strategy name.")
        parser.add_argument(
            "--output", "-o", help="Write to this file (replaced only once the export is complete); default stdout."
        )
        parser.add_argument("--chunk-size", type=int, default=2000, help="Rows fetched per round trip.")

    def handle(self, *args, since, until, account, status, strategy, output, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            filters = {
                "since": parse_time_bound(since, name="--since") if since else None,
                "until": parse_time_bound(until, name="--until") if until else None,
                "account_id": account,
                "statuses": [s.strip() for s in status.split(",") if s.strip()] if status is not None else (),
                "strategy_name": strategy,
                "chunk_size": chunk_size,
            }
            if status is not None and not filters["statuses"]:
                raise HistoryError("--status needs at least one status")
            if output and output != "-":
                count = self._to_file(Path(output), filters)
                self.stdout.write(f"exported {count} order(s) to {output}")
            else:
                count = self._to_stdout(filters)
                self.stderr.write(f"exported {count} order(s)")
        except HistoryError as exc:
            raise CommandError(str(exc)) from None

    def _to_file(self, path: Path, filters: dict) -> int:
        """Into a temporary file beside the target, renamed over it only when complete,
        so a failed or interrupted export never leaves a partial file."""
        if path.is_dir():
            raise HistoryError(f"--output {path} is a directory")
        if not path.parent.is_dir():
            raise HistoryError(f"--output: directory {path.parent} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise HistoryError(f"--output: cannot write in {path.parent}: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
                count = export_orders(out=out, **filters)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)  # as the journal; mkstemp made it 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

    def _to_stdout(self, filters: dict) -> int:
        stream = self.stdout._out
        if not hasattr(stream, "buffer"):  # a text stream given by call_command()
            return export_orders(out=stream, **filters)
        stream.flush()
        out = io.TextIOWrapper(stream.buffer, encoding="utf-8", newline="\n", write_through=False)
        try:
            count = export_orders(out=out, **filters)
            out.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly and keep Python from
            # complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise CommandError("standard output was closed before the export finished") from None
        finally:
            try:
                out.detach()  # leave sys.stdout usable (and closed by Python, not by us)
            except (OSError, ValueError):
                pass
        return count
