"""Orders out of the database: the JSONL export (as the journal writes its lines) and the
order list's table as CSV or XLSX. Every format speaks the one order representation
(orders.representation) and takes its filters from orders.selectors, so an export holds
exactly what the API and the dashboard show for the same filters."""

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO

from django.utils import timezone
from rest_framework import serializers
from rest_framework.settings import api_settings

from orders.models import Account, OrderStatus
from orders.representation import NOT_RECORDED, OrderSerializer, iso_datetime
from orders.selectors import OrderFilters, filtered_orders, history_rows


class ExportError(Exception):
    """An export that cannot be carried out as a whole (a bad filter, a field the export
    cannot format); its message is one readable line."""


class ExportTooLarge(ExportError):
    """More orders match than the export may carry; `title` heads the API's answer."""

    def __init__(self, message: str, *, title: str = "Invalid query"):
        super().__init__(message)
        self.title = title


def _record_plan() -> tuple[list[str], Callable[[tuple], dict]]:
    """The columns to read with values_list() and a function turning one such row into
    exactly what orders.representation.order_record() returns for the same order.

    order_record() builds a serializer and a model instance per order, which is far too
    slow for an export of millions of orders (BENCHMARKS.md has the figures). This reads
    plain rows and formats them as the serializer's own fields do. It is derived from
    OrderSerializer's declared fields, so a new field of a known kind is exported without
    change here, and a field of a kind not handled here stops the export instead of
    drifting from the API. tests/commands/test_export_orders.py proves both give byte-identical
    lines.
    """
    serializer = OrderSerializer()
    columns: list[str] = []
    steps: list[tuple[str, int | None, Callable | None]] = []
    methods = []
    tz = timezone.get_current_timezone()  # once per export, not per value

    def iso(value: datetime) -> str:
        return iso_datetime(value, tz)

    for name, fld in serializer.fields.items():
        if name in NOT_RECORDED:
            continue
        if isinstance(fld, serializers.SerializerMethodField):
            methods.append((name, getattr(serializer, fld.method_name)))
            steps.append((name, None, None))
            continue
        source, fmt = _column_format(name, fld, iso=iso)
        if source not in columns:
            columns.append(source)
        steps.append((name, columns.index(source), fmt))
    return columns, _record_maker(columns=columns, steps=steps, methods=methods)


def _column_format(name: str, fld: serializers.Field, *, iso: Callable) -> tuple[str, Callable | None]:
    """The column a serializer field reads, and how to format a value of it as the field
    does (None: the stored value itself)."""
    if isinstance(fld, serializers.SlugRelatedField):
        return f"{fld.source}__{fld.slug_field}", None
    if isinstance(fld, serializers.DateTimeField):
        if (getattr(fld, "format", api_settings.DATETIME_FORMAT) or "").lower() != "iso-8601":
            raise ExportError(f"export cannot format field {name!r}: not an ISO 8601 DateTimeField")
        return fld.source, iso
    if isinstance(fld, serializers.DecimalField):
        # the field's own formatting (cheap), then order_record's float()
        return fld.source, lambda value: float(fld.to_representation(value))
    if isinstance(fld, (serializers.ChoiceField, serializers.CharField)):
        return fld.source, None  # the stored string itself
    if isinstance(fld, (serializers.IntegerField, serializers.BooleanField)):
        return fld.source, None  # ints and bools come back typed
    raise ExportError(f"export cannot format field {name!r} ({type(fld).__name__})")


def _record_maker(*, columns: list[str], steps: list[tuple], methods: list[tuple]) -> Callable[[tuple], dict]:
    class Row:
        """What the serializer's method fields read: the order's columns as attributes."""

    def record(values: tuple) -> dict:
        out = {}
        for name, index, fmt in steps:
            if index is None:
                out[name] = None  # filled below, keeping the serializer's key order
                continue
            value = values[index]
            out[name] = value if value is None or fmt is None else fmt(value)
        if methods:
            row = Row()
            row.__dict__.update(zip(columns, values))
            for name, method in methods:
                out[name] = method(row)
        return out

    return record


def order_lines(records: Iterable[dict]) -> Iterator[str]:
    """JSONL lines as the journal writes them: UTF-8 text, one object per line."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"


class _Line:
    """A file-like object whose write() hands back what it was given: csv.writer then
    returns each formatted line instead of buffering it."""

    def write(self, text: str) -> str:
        return text


# A cell starting with one of these is a formula to a spreadsheet (CSV injection): text
# fields anyone can submit (strategy names, exchange error texts) are quoted with '.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def order_table(
    *, filters: OrderFilters, max_rows: int | None = None, chunk_size: int = 1000
) -> tuple[list[str], Iterator[list]]:
    """The orders matching `filters` as a table: the API's field names, then one row per
    order, newest first, exactly the orders (and order) that paging through GET
    /api/order-scheduler/orders with the same filters shows, with the same values.
    Every export format (CSV, XLSX) writes these rows, so they share the filters, the
    access rules (in `filters.accounts`) and the formula-injection guard.

    Cells are strings, ints or floats (None is ""); text that a spreadsheet would run as
    a formula is quoted with '. Rows are read a keyset page at a time
    (orders.selectors.history_rows) and formatted without a serializer per order, so an
    export of any size runs in constant memory. The filters are checked when this is
    called: a search matching too many orders raises orders.selectors.QueryError, and
    more than `max_rows` orders (a download's cap) ExportTooLarge, before any row is
    produced (counted up to the cap plus one: at most the cap's index entries)."""
    if max_rows is not None and filtered_orders(filters)[: max_rows + 1].count() > max_rows:
        raise ExportTooLarge(
            f"More than {max_rows} orders match; narrow the export with since and until (a day or a week at a "
            "time), account, status, strategy or symbol, or use `manage.py export_orders` on the server.",
            title="Export too large",
        )
    columns, record = _record_plan()
    rows = history_rows(filters=filters, columns=columns, chunk_size=chunk_size)
    header = [name for name in OrderSerializer().fields if name not in NOT_RECORDED]

    def table() -> Iterator[list]:
        for values in rows:
            data = record(values)
            yield [_cell(data[name]) for name in header]

    return header, table()


def _cell(value) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_text(value) -> str | int:
    if isinstance(value, float):  # order_record's numbers, written out in full (no 1e-07)
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    return value


UTF8_BOM = "\ufeff"


def orders_csv(
    *, filters: OrderFilters, bom: bool = False, max_rows: int | None = None, chunk_size: int = 1000
) -> Iterator[str]:
    """The order table (order_table) as CSV text, a line at a time. `bom` starts it with
    a UTF-8 byte order mark, which Excel needs to read the file as UTF-8 (Chinese
    strategy names) rather than the local code page."""
    header, rows = order_table(filters=filters, max_rows=max_rows, chunk_size=chunk_size)

    def lines() -> Iterator[str]:
        writer = csv.writer(_Line(), lineterminator="\r\n")
        yield (UTF8_BOM if bom else "") + writer.writerow(header)
        for row in rows:
            yield writer.writerow([_csv_text(cell) for cell in row])

    return lines()


# Excel's limit is 1,048,576 rows per sheet, the header included.
XLSX_MAX_ROWS = 1_048_575


def _xlsx_text(text: str, illegal) -> str:
    # Control characters cannot be stored in a workbook (an exchange's error text may
    # carry one); what is left is guarded again, as it may now start a formula.
    clean = illegal.sub("", text)
    if clean != text and clean.startswith(_FORMULA_STARTS):
        clean = "'" + clean
    return clean


def orders_xlsx(*, filters: OrderFilters, out: IO[bytes], max_rows: int | None = None, chunk_size: int = 1000) -> int:
    """The order table (order_table) as an Excel workbook written to `out` (a binary
    file), in openpyxl's write-only mode: rows go to a temporary file as they come, so
    memory stays flat whatever the count. Numbers stay numbers; text is the same text
    the CSV holds. Returns the number of orders; raises ExportTooLarge past one sheet's
    rows (nothing useful is written then)."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    header, rows = order_table(filters=filters, max_rows=max_rows, chunk_size=chunk_size)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("orders")
    sheet.freeze_panes = "A2"
    sheet.append(header)
    count = 0
    for row in rows:
        count += 1
        if count > XLSX_MAX_ROWS:
            rows.close()
            raise ExportTooLarge(
                f"More than {XLSX_MAX_ROWS} orders match: more than one Excel sheet holds. "
                "Narrow the filters or export CSV."
            )
        sheet.append([_xlsx_text(cell, ILLEGAL_CHARACTERS_RE) if isinstance(cell, str) else cell for cell in row])
    book.save(out)
    return count


def export_filters(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: str | None = None,
    statuses: Iterable[str] = (),
    strategy_name: str | None = None,
) -> OrderFilters:
    """The filters of an export on the server (every account), checked: known statuses,
    a window that is not empty, an account that exists. Raises ExportError."""
    statuses = tuple(dict.fromkeys(statuses))
    unknown = [s for s in statuses if s not in OrderStatus.values]
    if unknown:
        raise ExportError(f"unknown status {unknown[0]!r}; use one or more of {', '.join(OrderStatus.values)}")
    if since and until and since >= until:
        raise ExportError("--since must be before --until")
    if account_id is not None and not Account.objects.filter(pk=account_id).exists():
        raise ExportError(f"unknown account {account_id!r}")
    return OrderFilters(account=account_id, statuses=statuses, strategy=strategy_name, since=since, until=until)


def export_orders(*, out: IO[str], filters: OrderFilters, chunk_size: int = 2000) -> int:
    """Write the orders matching `filters` (export_filters) to `out` as JSONL, oldest
    first (created_at, then id), and return how many were written.

    One streamed query (values_list().iterator()) in constant memory, whatever the row
    count: it reads one consistent snapshot, and SQLite's sorter spills to disk when an
    index cannot give the order (a status filter with several statuses).
    """
    columns, record = _record_plan()
    orders = filtered_orders(filters).order_by("created_at", "id")
    rows = orders.values_list(*columns).iterator(chunk_size=chunk_size)
    written = 0
    batch: list[str] = []
    try:
        for line in order_lines(map(record, rows)):
            batch.append(line)
            if len(batch) >= chunk_size:
                out.write("".join(batch))
                written += len(batch)
                batch.clear()
        out.write("".join(batch))
    finally:
        rows.close()  # release the database cursor now, even when `out` failed
    return written + len(batch)
