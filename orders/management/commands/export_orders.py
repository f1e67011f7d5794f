"""Export orders as JSONL (the API's field names), or as the order list's CSV or XLSX
table, to a file or standard output."""

import io
import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.selectors import QueryError, parse_time_bound
from orders.services.exports import ExportError, export_filters, export_orders, orders_csv, orders_xlsx


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
        parser.add_argument(
            "--format",
            choices=("jsonl", "csv", "xlsx"),
            default="jsonl",
            help="jsonl (default: oldest first, as the journal) or the dashboard's table, newest first: csv or xlsx "
            "(same columns, values and formula guard as GET /api/order-scheduler/orders.csv; xlsx needs --output).",
        )
        parser.add_argument("--bom", action="store_true", help="csv: start with a UTF-8 byte order mark (for Excel).")

    def handle(self, *args, since, until, account, status, strategy, output, chunk_size, format, bom, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        if bom and format != "csv":
            raise CommandError("--bom applies to --format csv only")
        to_file = output not in (None, "", "-")
        if format == "xlsx" and not to_file:
            raise CommandError("--format xlsx needs --output FILE (a workbook is binary)")
        try:
            since_at = parse_time_bound(since, name="--since") if since else None
            until_at = parse_time_bound(until, name="--until") if until else None
            statuses = [s.strip() for s in status.split(",") if s.strip()] if status is not None else ()
            if status is not None and not statuses:
                raise ExportError("--status needs at least one status")
            filters = export_filters(
                since=since_at,
                until=until_at,
                account_id=account,
                statuses=statuses,
                strategy_name=strategy,
            )
            write = self._writer(filters, format=format, bom=bom, chunk_size=chunk_size)
            count = self._replace(Path(output), write, binary=format == "xlsx") if to_file else self._to_stdout(write)
        except (ExportError, QueryError) as exc:
            raise CommandError(str(exc)) from None
        if to_file:
            self.stdout.write(f"exported {count} order(s) to {output}")
        else:
            self.stderr.write(f"exported {count} order(s)")

    @staticmethod
    def _writer(filters, *, format: str, bom: bool, chunk_size: int):
        """The format's writer: out -> how many orders it wrote."""
        if format == "jsonl":
            return lambda out: export_orders(out=out, filters=filters, chunk_size=chunk_size)
        if format == "xlsx":
            return lambda out: orders_xlsx(filters=filters, out=out, chunk_size=chunk_size)

        def write(out) -> int:
            count = -1  # the header is a line, not an order
            for line in orders_csv(filters=filters, bom=bom, chunk_size=chunk_size):
                out.write(line)
                count += 1
            return count

        return write

    def _replace(self, path: Path, write, *, binary: bool = False) -> int:
        """Into a temporary file beside the target, renamed over it only when complete,
        so a failed or interrupted export never leaves a partial file."""
        if path.is_dir():
            raise ExportError(f"--output {path} is a directory")
        if not path.parent.is_dir():
            raise ExportError(f"--output: directory {path.parent} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise ExportError(f"--output: cannot write in {path.parent}: {exc.strerror}") from None
        try:
            mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
            with os.fdopen(fd, buffering=1 << 20, **mode) as out:
                count = write(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)  # as the journal; mkstemp made it 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

    def _to_stdout(self, write) -> int:
        """`write` the export to standard output, as UTF-8, stopping with one readable
        line when the reader goes away."""
        stream = self.stdout._out
        if not hasattr(stream, "buffer"):  # a text stream given by call_command()
            return write(stream)
        stream.flush()
        out = io.TextIOWrapper(stream.buffer, encoding="utf-8", newline="\n", write_through=False)
        try:
            count = write(out)
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
