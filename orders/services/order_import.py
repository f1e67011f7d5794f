"""Order history into the database: the older system's execution logs, our journal and
our exports (JSONL, gzipped or not). Each line is checked with the order's field rules
(orders.validation) and only finished orders are taken, so nothing imported is ever
executed."""

import gzip
import json
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.db import IntegrityError, transaction
from rest_framework import serializers

from orders.models import Account, MarginMode, Order, OrderStatus
from orders.services.accounts import ACCOUNT_ID_RE
from orders.services.submit import client_order_id_for
from orders.validation import REQUEST_ID_RE, OrderFieldsSerializer


class OrderImportError(Exception):
    """An import that cannot start (a missing or unreadable file); one readable line."""


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
            raise OrderImportError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise OrderImportError(f"{path}: not readable")
    report = ImportReport()
    importer = _Importer(report=report, on_problem=on_problem, chunk_size=chunk_size)
    for path in paths:
        importer.read(path)
        importer.flush()
    importer.link_retries()
    return report
