"""Order history in and out of the database: JSONL export, import of older logs and of
our own exports, and archiving of the execution journal.

Export and import speak the one order representation (orders.representation). Archiving
shares the journal's locking protocol (orders.services.journal): a day's file is only
read, compressed and removed under the same exclusive flock that every journal write
takes, so no line is ever lost or written twice.
"""

import csv
import fcntl
import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers
from rest_framework.settings import api_settings

from orders.models import Account, MarginMode, Order, OrderStatus
from orders.representation import OrderSerializer
from orders.selectors import OrderFilters, history_rows
from orders.services.accounts import ACCOUNT_ID_RE
from orders.services.submit import client_order_id_for
from orders.validation import REQUEST_ID_RE, OrderFieldsSerializer

logger = logging.getLogger(__name__)


class HistoryError(Exception):
    """A request that cannot be carried out as a whole (bad filter, unreadable file);
    its message is one readable line."""


# --- Export ---------------------------------------------------------------------------


def parse_time_bound(value: str, *, name: str) -> datetime:
    """An ISO 8601 date or datetime as an aware datetime. A date is local midnight and a
    datetime without an offset is local time, both in the configured TIME_ZONE."""
    text = value.strip()
    try:
        day = parse_date(text)
        moment = None if day else parse_datetime(text)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        day = moment = None
    if day is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise HistoryError(
            f"{name} must be an ISO 8601 date or datetime (2026-02-21 or 2026-02-21T15:30), got {value!r}"
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def _record_plan() -> tuple[list[str], Callable[[tuple], dict]]:
    """The columns to read with values_list() and a function turning one such row into
    exactly what orders.representation.order_record() returns for the same order.

    order_record() builds a serializer and a model instance per order: 0.55 ms each,
    nine minutes per million orders. This reads plain rows and formats them as the
    serializer's own fields do: bench/export.py writes a million in about 35 s. It is
    derived from OrderSerializer's declared fields, so a new field of a known kind is
    exported without change here, and a field of a kind not handled here stops the
    export instead of drifting from the API. tests/test_export_orders.py proves both
    give byte-identical lines.
    """
    serializer = OrderSerializer()
    columns: list[str] = []
    steps: list[tuple[str, int | None, Callable | None]] = []
    tz = timezone.get_current_timezone()

    def iso(value: datetime) -> str:  # rest_framework DateTimeField.to_representation
        text = value.astimezone(tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    def column(source: str) -> int:
        if source not in columns:
            columns.append(source)
        return columns.index(source)

    methods = []
    for name, fld in serializer.fields.items():
        if isinstance(fld, serializers.SerializerMethodField):
            methods.append((name, getattr(serializer, fld.method_name)))
            steps.append((name, None, None))
        elif isinstance(fld, serializers.SlugRelatedField):
            steps.append((name, column(f"{fld.source}__{fld.slug_field}"), None))
        elif isinstance(fld, serializers.DateTimeField):
            if (getattr(fld, "format", api_settings.DATETIME_FORMAT) or "").lower() != "iso-8601":
                raise HistoryError(f"export cannot format field {name!r}: not an ISO 8601 DateTimeField")
            steps.append((name, column(fld.source), iso))
        elif isinstance(fld, serializers.DecimalField):
            # the field's own formatting (cheap), then order_record's float()
            steps.append((name, column(fld.source), lambda value, fld=fld: float(fld.to_representation(value))))
        elif isinstance(fld, (serializers.ChoiceField, serializers.CharField)):
            steps.append((name, column(fld.source), None))  # the stored string itself
        elif isinstance(fld, (serializers.IntegerField, serializers.BooleanField)):
            steps.append((name, column(fld.source), None))  # ints and bools come back typed
        else:
            raise HistoryError(f"export cannot format field {name!r} ({type(fld).__name__})")

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

    return columns, record


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


def order_table(*, filters: OrderFilters, chunk_size: int = 1000) -> tuple[list[str], Iterator[list]]:
    """The orders matching `filters` as a table: the API's field names, then one row per
    order, newest first, exactly the orders (and order) that paging through GET
    /api/order-scheduler/orders with the same filters shows, with the same values.
    Every export format (CSV, XLSX) writes these rows, so they share the filters, the
    access rules (in `filters.accounts`) and the formula-injection guard.

    Cells are strings, ints or floats (None is ""); text that a spreadsheet would run as
    a formula is quoted with '. Rows are read a keyset page at a time
    (orders.selectors.history_rows) and formatted without a serializer per order, so an
    export of any size runs in constant memory. The filters are checked when this is
    called: a search matching too many orders raises orders.selectors.QueryError before
    any row is produced."""
    columns, record = _record_plan()
    rows = history_rows(filters=filters, columns=columns, chunk_size=chunk_size)
    header = list(OrderSerializer().fields)

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


def orders_csv(*, filters: OrderFilters, bom: bool = False, chunk_size: int = 1000) -> Iterator[str]:
    """The order table (order_table) as CSV text, a line at a time. `bom` starts it with
    a UTF-8 byte order mark, which Excel needs to read the file as UTF-8 (Chinese
    strategy names) rather than the local code page."""
    header, rows = order_table(filters=filters, chunk_size=chunk_size)

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


class ExportTooLarge(HistoryError):
    pass


def orders_xlsx(*, filters: OrderFilters, out: IO[bytes], chunk_size: int = 1000) -> int:
    """The order table (order_table) as an Excel workbook written to `out` (a binary
    file), in openpyxl's write-only mode: rows go to a temporary file as they come, so
    memory stays flat whatever the count. Numbers stay numbers; text is the same text
    the CSV holds. Returns the number of orders; raises ExportTooLarge past one sheet's
    rows (nothing useful is written then)."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    header, rows = order_table(filters=filters, chunk_size=chunk_size)
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


def _check_export_filters(*, since, until, account_id, statuses) -> None:
    unknown = [s for s in statuses if s not in OrderStatus.values]
    if unknown:
        raise HistoryError(f"unknown status {unknown[0]!r}; use one or more of {', '.join(OrderStatus.values)}")
    if since and until and since >= until:
        raise HistoryError("--since must be before --until")
    if account_id is not None and not Account.objects.filter(pk=account_id).exists():
        raise HistoryError(f"unknown account {account_id!r}")


def table_filters(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: str | None = None,
    statuses: Iterable[str] = (),
    strategy_name: str | None = None,
) -> OrderFilters:
    """export_orders' filters (checked the same way) for the CSV and XLSX exports, which
    write the order list's table (order_table): every account, newest first."""
    statuses = tuple(dict.fromkeys(statuses))
    _check_export_filters(since=since, until=until, account_id=account_id, statuses=statuses)
    return OrderFilters(account=account_id, statuses=statuses, strategy=strategy_name, since=since, until=until)


def export_orders(
    *,
    out: IO[str],
    since: datetime | None = None,
    until: datetime | None = None,
    account_id: str | None = None,
    statuses: Iterable[str] = (),
    strategy_name: str | None = None,
    chunk_size: int = 2000,
) -> int:
    """Write the matching orders to `out` as JSONL, oldest first (created_at, then id),
    and return how many were written. `since` is inclusive, `until` exclusive.

    One streamed query (values_list().iterator()) in constant memory, whatever the row
    count: it reads one consistent snapshot, and SQLite's sorter spills to disk when an
    index cannot give the order (a status filter with several statuses).
    """
    statuses = list(statuses)
    _check_export_filters(since=since, until=until, account_id=account_id, statuses=statuses)

    orders = Order.objects.all()
    if since:
        orders = orders.filter(created_at__gte=since)
    if until:
        orders = orders.filter(created_at__lt=until)
    if account_id is not None:
        orders = orders.filter(account_id=account_id)
    if statuses:
        orders = orders.filter(status__in=statuses)
    if strategy_name is not None:
        orders = orders.filter(strategy_name=strategy_name)
    columns, record = _record_plan()
    rows = orders.order_by("created_at", "id").values_list(*columns).iterator(chunk_size=chunk_size)
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


# --- Import ---------------------------------------------------------------------------

IMPORTABLE = OrderStatus.final()
DERIVED_FIELDS = {"queued_at", "queue_wait_ms", "execution_ms"}  # recomputed from the others
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
IMPORTED_ACCOUNT_NOTE = "Created by import_orders to keep imported history; not in the accounts file."


class OrderImportSerializer(OrderFieldsSerializer):
    """One history line: the submit API's field rules (symbol form, side, type, amount,
    leverage range, request id form...) plus what a finished order carries.

    The submit API's cross-field rules (a limit order needs a price, a market order
    takes none) are about what can be sent to the exchange; an imported order is never
    sent, and an older system's log may not have recorded a limit price, so they are
    not applied here (OrderFieldsSerializer has none).
    """

    expires_in = None
    request_id = serializers.CharField(max_length=64)
    timestamp = serializers.DateTimeField()
    margin_mode = serializers.ChoiceField(choices=MarginMode.choices, required=False, allow_blank=True, allow_null=True)
    status = serializers.CharField()
    order_id = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    client_order_id = serializers.CharField(max_length=32, required=False, allow_null=True, allow_blank=True)
    exchange_state = serializers.CharField(max_length=24, required=False, allow_blank=True, allow_null=True)
    filled_amount = serializers.DecimalField(max_digits=30, decimal_places=12, required=False, allow_null=True)
    average_price = serializers.DecimalField(max_digits=30, decimal_places=12, required=False, allow_null=True)
    fee = serializers.DecimalField(max_digits=30, decimal_places=12, required=False, allow_null=True)
    fee_currency = serializers.CharField(max_length=16, required=False, allow_blank=True, allow_null=True)
    error_code = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    error_message = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    attempts = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=32767)
    retry_of = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    started_at = serializers.DateTimeField(required=False, allow_null=True)
    finished_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_status(self, value: str) -> str:
        if value not in IMPORTABLE:
            if value in OrderStatus.values:
                raise serializers.ValidationError(
                    f"'{value}' is not final; only {', '.join(IMPORTABLE)} are imported, "
                    "so an imported order can never be executed."
                )
            raise serializers.ValidationError(f"'{value}' is not a status; expected one of {', '.join(IMPORTABLE)}.")
        return value

    def validate_client_order_id(self, value):
        if value and not CLIENT_ORDER_ID_RE.match(value):
            raise serializers.ValidationError("1 to 32 letters or digits only (OKX's clOrdId).")
        return value

    def validate_retry_of(self, value):
        if value and not REQUEST_ID_RE.match(value):
            raise serializers.ValidationError("Not a request id.")
        return value


@dataclass
class ImportReport:
    imported: int = 0
    existing: int = 0  # skipped: an order with the request id is already in the history
    rejected: int = 0
    accounts_created: list[str] = field(default_factory=list)
    ignored_fields: set[str] = field(default_factory=set)


@dataclass
class _Pending:
    order: Order
    origin: str  # "file:line"
    retry_of: str | None


def _reason(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_reason(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_reason(item) for item in detail)
    return str(detail)


def _open_history(path: Path) -> IO[bytes]:
    """The file's lines as bytes; gzip is recognised by its magic number, not its name."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


class _Importer:
    def __init__(self, *, report: ImportReport, on_problem: Callable[[str], None], chunk_size: int):
        self.report = report
        self.on_problem = on_problem
        self.chunk_size = chunk_size
        self.validator = OrderImportSerializer()  # one instance: per-line construction costs more than validating
        self.known = set(self.validator.fields)
        self.batch: list[_Pending] = []
        self.links: list[tuple[str, str, str]] = []  # (request id, retry_of request id, origin)

    def reject(self, origin: str, reason: str) -> None:
        self.report.rejected += 1
        self.on_problem(f"{origin}: {reason}")

    def read(self, path: Path) -> None:
        lineno = 0
        try:
            with _open_history(path) as handle:
                for lineno, raw in enumerate(handle, 1):
                    self.take(raw, f"{path}:{lineno}")
        except (OSError, EOFError, zlib.error) as exc:
            # A truncated or corrupt .gz: what was read before it is kept.
            self.reject(f"{path}:{lineno + 1}", f"cannot read further: {exc}")

    def take(self, raw: bytes, origin: str) -> None:
        try:
            text = raw.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            self.reject(origin, f"not UTF-8 text: {exc.reason} at byte {exc.start}")
            return
        if not text.strip():
            return
        try:
            data = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            self.reject(origin, f"not valid JSON: {exc}")
            return
        if not isinstance(data, dict):
            self.reject(origin, "not a JSON object")
            return
        self.report.ignored_fields.update(set(data) - self.known - DERIVED_FIELDS)
        try:
            attrs = self.validator.run_validation({k: v for k, v in data.items() if k in self.known})
        except serializers.ValidationError as exc:
            self.reject(origin, _reason(exc.detail))
            return
        self.batch.append(_Pending(order=self.build(attrs), origin=origin, retry_of=attrs.get("retry_of") or None))
        if len(self.batch) >= self.chunk_size:
            self.flush()

    @staticmethod
    def build(attrs: dict) -> Order:
        request_id = attrs["request_id"]
        return Order(
            request_id=request_id,
            client_order_id=attrs.get("client_order_id") or client_order_id_for(request_id),
            account_id=attrs["account_id"],
            symbol=attrs["symbol"],
            side=attrs["side"],
            order_type=attrs["order_type"],
            amount=attrs["amount"],
            amount_unit=attrs["amount_unit"],
            price=attrs.get("price"),
            leverage=attrs.get("leverage"),
            margin_mode=attrs.get("margin_mode") or "",
            reduce_only=attrs["reduce_only"],
            strategy_name=attrs["strategy_name"],
            priority=attrs["priority"],
            status=attrs["status"],
            order_id=attrs.get("order_id") or None,
            exchange_state=attrs.get("exchange_state") or "",
            filled_amount=attrs.get("filled_amount"),
            average_price=attrs.get("average_price"),
            fee=attrs.get("fee"),
            fee_currency=attrs.get("fee_currency") or "",
            error_code=attrs.get("error_code") or "",
            error_message=attrs.get("error_message") or "",
            attempts=attrs.get("attempts") or 0,
            created_at=attrs["timestamp"],
            started_at=attrs.get("started_at"),
            finished_at=attrs.get("finished_at"),
            expires_at=attrs.get("expires_at"),
        )

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        for attempt in range(3):
            try:
                with transaction.atomic():
                    outcome = self._insert(batch)
                break
            except IntegrityError:
                # Someone inserted one of these orders meanwhile (a concurrent import or
                # submit): the whole chunk rolled back; its checks see them next time.
                if attempt == 2:
                    raise
        # Counted only once the chunk is in: a rolled-back attempt reports nothing.
        orders, links, new_accounts, skipped, rejected = outcome
        self.report.imported += len(orders)
        self.report.existing += skipped
        self.report.accounts_created.extend(new_accounts)
        self.links.extend(links)
        for origin, reason in rejected:
            self.reject(origin, reason)

    def _insert(self, batch: list[_Pending]) -> tuple:
        """Inside one transaction: skip what exists, create missing accounts, insert."""
        ids = {p.order.request_id for p in batch}
        existing = set(Order.objects.filter(request_id__in=ids).values_list("request_id", flat=True))
        cids = {p.order.client_order_id for p in batch}
        taken = dict(Order.objects.filter(client_order_id__in=cids).values_list("client_order_id", "request_id"))
        account_ids = {p.order.account_id for p in batch}
        known_accounts = set(Account.objects.filter(pk__in=account_ids).values_list("pk", flat=True))

        orders, links, new_accounts, skipped, rejected = [], [], {}, 0, []
        for pending in batch:
            order = pending.order
            if order.request_id in existing:
                skipped += 1
                continue
            if order.client_order_id in taken:
                rejected.append((pending.origin, f"client_order_id {order.client_order_id!r} already belongs to order "
                                 f"{taken[order.client_order_id]!r}"))  # fmt: skip
                continue
            if order.account_id not in known_accounts and order.account_id not in new_accounts:
                if not ACCOUNT_ID_RE.match(order.account_id):
                    rejected.append((pending.origin, f"account_id: unknown account {order.account_id!r}, and not a "
                                     "valid account id (1 to 64 letters, digits or _ . -) to create"))  # fmt: skip
                    continue
                new_accounts[order.account_id] = Account(
                    id=order.account_id,
                    name=order.account_id,
                    enabled=False,
                    in_config=False,
                    config_error=IMPORTED_ACCOUNT_NOTE,
                )
            existing.add(order.request_id)  # a later line with the same id is a repeat
            taken[order.client_order_id] = order.request_id
            orders.append(order)
            if pending.retry_of:
                links.append((order.request_id, pending.retry_of, pending.origin))
        Account.objects.bulk_create(new_accounts.values(), ignore_conflicts=True)
        Order.objects.bulk_create(orders)
        return orders, links, new_accounts, skipped, rejected

    def link_retries(self) -> None:
        """retry_of names an earlier order by request id; set the links once every file
        is in, since the original may come later in the input."""
        for start in range(0, len(self.links), self.chunk_size):
            chunk = self.links[start : start + self.chunk_size]
            targets = dict(
                Order.objects.filter(request_id__in={target for _, target, _ in chunk}).values_list("request_id", "pk")
            )
            with transaction.atomic():
                for request_id, target, origin in chunk:
                    if target in targets:
                        Order.objects.filter(request_id=request_id).update(retry_of_id=targets[target])
                    else:
                        self.on_problem(
                            f"{origin}: retry_of {target!r} is not in the history; imported without the link"
                        )


def import_orders(*, paths: list[Path], on_problem: Callable[[str], None], chunk_size: int = 1000) -> ImportReport:
    """Load history lines (JSONL or gzipped JSONL: the older system's execution logs,
    our journal, our exports) into the Order table, and return the counts.

    Idempotent by request_id: a line whose order exists is skipped and counted, never
    duplicated or overwritten. Only final statuses are taken, so nothing imported is
    ever executed. Each line that cannot be taken is passed to `on_problem` as
    "file:line: reason". Lines are inserted in chunks, each in one transaction, after
    every line in it passed validation, so a bad line never leaves half a chunk.

    An unknown account is created disabled and out of config (it takes no orders until
    the accounts file lists it), so a desk keeps the history of retired accounts.
    """
    for path in paths:
        if not path.is_file():
            raise HistoryError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise HistoryError(f"{path}: not readable")
    report = ImportReport()
    importer = _Importer(report=report, on_problem=on_problem, chunk_size=chunk_size)
    for path in paths:
        importer.read(path)
        importer.flush()
    importer.link_retries()
    return report


# --- Journal archiving ----------------------------------------------------------------

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
    HistoryError if the file is corrupt or truncated."""
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
                    raise HistoryError(f"{path.name} is not a valid gzip file: {exc}") from None
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
        raise HistoryError(f"{path.name} is truncated")
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
            raise HistoryError(f"{source.name} changed while being archived")
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
        raise HistoryError(f"--older-than must be 0 or more days, got {older_than_days}")
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
        except (OSError, HistoryError) as exc:
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
