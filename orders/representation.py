"""The one representation of an order, shared by the API, the journal and exports.

Field names are the seed report's contract (request_id, timestamp, account_id, symbol,
side, order_type, amount, leverage, strategy_name, status, order_id); everything else is
an addition. Numbers stay JSON numbers.
"""

import copy
import threading
from datetime import datetime, tzinfo

from django.utils import timezone
from rest_framework import serializers

from orders.models import MarginMode, Order


def _millis(start, end) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def iso_datetime(value: datetime, tz: tzinfo | None = None) -> str:
    """A time as the API writes it (DRF's DateTimeField): in TIME_ZONE (or `tz`), ISO
    8601, UTC as Z. For what is written without a serializer: exports, the event stream."""
    text = value.astimezone(tz or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class OrderSerializer(serializers.ModelSerializer):
    timestamp = serializers.DateTimeField(source="created_at", help_text="When the order was submitted.")
    account_id = serializers.CharField()
    amount = serializers.DecimalField(max_digits=30, decimal_places=12, coerce_to_string=False, normalize_output=True)
    price = serializers.DecimalField(
        max_digits=30, decimal_places=12, coerce_to_string=False, normalize_output=True, allow_null=True
    )
    filled_amount = serializers.DecimalField(
        max_digits=30, decimal_places=12, coerce_to_string=False, normalize_output=True, allow_null=True
    )
    average_price = serializers.DecimalField(
        max_digits=30, decimal_places=12, coerce_to_string=False, normalize_output=True, allow_null=True
    )
    fee = serializers.DecimalField(
        max_digits=30, decimal_places=12, coerce_to_string=False, normalize_output=True, allow_null=True
    )
    # Blank on orders queued before a margin mode applied; declared so the schema says so.
    margin_mode = serializers.ChoiceField(choices=MarginMode.choices, allow_blank=True, read_only=True)
    retry_of = serializers.SlugRelatedField(slug_field="request_id", read_only=True, allow_null=True)
    queued_at = serializers.DateTimeField(source="created_at")
    queue_wait_ms = serializers.SerializerMethodField()
    execution_ms = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField(
        help_text='What a trader may still do with the order: "cancel" (queued, or resting on the '
        'exchange\'s book), "retry" (failed or expired). Not part of the journal or exports.'
    )

    _fields_template: dict | None = None

    def get_fields(self):
        # ModelSerializer rebuilds every field from the model on each use, a cost paid
        # on every response; build them once and hand out copies, as DRF itself does
        # for declared fields.
        if OrderSerializer._fields_template is None:
            OrderSerializer._fields_template = super().get_fields()
        return copy.deepcopy(OrderSerializer._fields_template)

    class Meta:
        model = Order
        fields = [
            "request_id",
            "timestamp",
            "account_id",
            "symbol",
            "side",
            "order_type",
            "amount",
            "leverage",
            "strategy_name",
            "status",
            "order_id",
            "amount_unit",
            "price",
            "margin_mode",
            "reduce_only",
            "priority",
            "client_order_id",
            "exchange_state",
            "filled_amount",
            "average_price",
            "fee",
            "fee_currency",
            "error_code",
            "error_message",
            "attempts",
            "retry_of",
            "queued_at",
            "started_at",
            "finished_at",
            "expires_at",
            "queue_wait_ms",
            "execution_ms",
            "actions",
        ]
        read_only_fields = fields

    def get_queue_wait_ms(self, order: Order) -> int | None:
        return _millis(order.created_at, order.started_at)

    def get_execution_ms(self, order: Order) -> int | None:
        return _millis(order.started_at, order.finished_at)

    def get_actions(self, order: Order) -> list[str]:
        return order.actions()


# What the order allows now, not what happened: the API shows it, the records do not.
NOT_RECORDED = ("actions",)


_local = threading.local()


def order_data(order: Order) -> dict:
    """`OrderSerializer(order).data`, without building the serializer's 32 fields again
    for every order (a large share of a submit's CPU): one serializer per thread, its
    fields bound once. They format values and keep no state between calls."""
    serializer = getattr(_local, "serializer", None)
    if serializer is None:
        serializer = _local.serializer = OrderSerializer()
    return serializer.to_representation(order)


def order_record(order: Order) -> dict:
    """The order as plain JSON-able data (Decimals as floats), for the journal and exports."""
    data = {key: value for key, value in order_data(order).items() if key not in NOT_RECORDED}
    for key, value in data.items():
        if value is not None and key in ("amount", "price", "filled_amount", "average_price", "fee"):
            data[key] = float(value)
    return data
