"""Input shapes of the API (request bodies and query strings): the form of each field,
nothing that needs the database."""

import re
from datetime import datetime

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders import selectors
from orders.models import OrderStatus, OrderType, Side
from orders.services.accounts import ACCOUNT_ID_RE
from orders.validation import REQUEST_ID_RE, OrderFieldsSerializer, StrictCharField, request_id_checked

# Stored as "<user id>:<key>#<index>" in a 128-character column.
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")


class StrictBodySerializer(serializers.Serializer):
    """A request body whose unknown fields are refused: a misspelt field (e.g. "ammount",
    "acount") must not be silently ignored on a trade, a pause or a settlement."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class OrderSubmitSerializer(StrictBodySerializer, OrderFieldsSerializer):
    """The submit body: the order's field rules (orders.validation), no unknown field, and
    a price exactly when the exchange needs one."""

    def validate(self, attrs):
        if attrs["order_type"] == OrderType.LIMIT and attrs.get("price") is None:
            raise serializers.ValidationError({"price": ["A limit order needs a price."]})
        if attrs["order_type"] == OrderType.MARKET and attrs.get("price") is not None:
            raise serializers.ValidationError({"price": ["A market order takes no price."]})
        return attrs


class QueryParamsSerializer(serializers.Serializer):
    """A query string's parameters. A blank value counts as absent (forms send them),
    a repeated parameter keeps its last value unless the field takes a list, and an
    unknown parameter is refused: a misspelt filter must not silently widen the result."""

    # DRF's own ?format=json|api switch.
    PASSED_THROUGH = ("format",)

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            plain = {}
            for key in data:
                values = [value.strip() for value in data.getlist(key) if value.strip()]
                if values:
                    plain[key] = values if isinstance(self.fields.get(key), StatusListField) else values[-1]
            data = plain
        known = ", ".join(self.fields)
        errors = {
            key: [f"Unknown query parameter; use {known}."]
            for key in sorted(set(data) - set(self.fields) - set(self.PASSED_THROUGH))
        }
        try:
            values = super().to_internal_value({key: value for key, value in data.items() if key in self.fields})
        except serializers.ValidationError as exc:
            errors.update(exc.detail)
        if errors:
            raise serializers.ValidationError(errors)
        return values


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": OrderStatus.values}})
class StatusListField(serializers.Field):
    """Order statuses, comma-separated (status=failed,expired) or repeated
    (status=failed&status=expired)."""

    choices = OrderStatus.values

    def to_internal_value(self, data) -> tuple[str, ...]:
        values = data if isinstance(data, list) else [data]
        items = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
        wrong = [item for item in items if item not in self.choices]
        if wrong:
            raise serializers.ValidationError(
                f"Unknown value {', '.join(repr(w) for w in wrong)}; use one or more of {', '.join(self.choices)}."
            )
        return tuple(dict.fromkeys(items))


@extend_schema_field(
    {
        "anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time"},
            {"type": "string", "maxLength": 0},  # blank counts as absent
        ],
        "examples": ["2026-02-21", "2026-02-21T15:30", "2026-02-21T07:30:00Z"],
        "description": "ISO 8601 date (local midnight) or date-time (without an offset: local time).",
    }
)
class LocalDateTimeField(serializers.Field):
    """An ISO 8601 date or date-time. A date alone means that day's midnight, and a
    date-time without an offset a wall-clock time, both in the configured time zone."""

    default_error_messages = {
        "invalid": "Use ISO 8601: 2026-02-21 (local midnight), 2026-02-21T15:30 (local time) "
        "or 2026-02-21T15:30:00+08:00."
    }

    def to_internal_value(self, data) -> datetime:
        try:
            return selectors.parse_time_bound(data, name=self.field_name)
        except selectors.QueryError:
            self.fail("invalid")


class OrdersQuerySerializer(QueryParamsSerializer):
    limit = serializers.IntegerField(required=False, default=100, min_value=1, help_text="Page size (default 100).")
    account = serializers.RegexField(
        ACCOUNT_ID_RE, required=False, allow_blank=True, max_length=64, help_text="Account id."
    )
    status = StatusListField(required=False, help_text="One or more statuses, comma-separated or repeated.")
    strategy = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="Strategy name.")
    symbol = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="ccxt unified symbol, e.g. BTC/USDT:USDT."
    )
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    order_type = serializers.ChoiceField(choices=OrderType.choices, required=False)
    since = LocalDateTimeField(required=False, help_text="Created at or after (inclusive).")
    until = LocalDateTimeField(required=False, help_text="Created before (exclusive).")
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="A request id, exchange order id or client order id, whole or its beginning.",
    )
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="The next_cursor of the previous page, to read the page after it.",
    )

    def validate_limit(self, value):
        from django.conf import settings

        cap = settings.ORDER_SCHEDULER["MAX_ORDERS_LIMIT"]
        if value > cap:
            raise serializers.ValidationError(f"At most {cap}.")
        return value

    def validate_q(self, value):
        if not REQUEST_ID_RE.match(value):
            raise serializers.ValidationError("Ids contain only letters, digits and _ . : - characters.")
        return value

    def validate_cursor(self, value):
        try:
            return selectors.decode_cursor(value)
        except ValueError:
            raise serializers.ValidationError("Not a next_cursor from this API.") from None

    def filters(self) -> selectors.OrderFilters:
        data = self.validated_data
        return selectors.OrderFilters(
            account=data.get("account"),
            statuses=data.get("status", ()),
            strategy=data.get("strategy"),
            symbol=data.get("symbol"),
            side=data.get("side"),
            order_type=data.get("order_type"),
            since=data.get("since"),
            until=data.get("until"),
            q=data.get("q"),
        )


class OrdersExportQuerySerializer(OrdersQuerySerializer):
    """The order list's filters, for an export of every matching order (no page)."""

    limit = None
    cursor = None


class OrdersCsvQuerySerializer(OrdersExportQuerySerializer):
    bom = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Start the file with a UTF-8 byte order mark (Excel then reads Chinese text right).",
    )


class StatsQuerySerializer(QueryParamsSerializer):
    account = serializers.RegexField(
        ACCOUNT_ID_RE, required=False, allow_blank=True, max_length=64, help_text="Only this account's orders."
    )
    strategy = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Only this strategy's orders."
    )


class ControlRequestSerializer(StrictBodySerializer):
    account = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=64,
        validators=[RegexValidator(ACCOUNT_ID_RE, "1 to 64 letters, digits or _ . - only.")],
        help_text="The account; all trading when omitted or blank.",
    )

    reason = StrictCharField(required=False, allow_blank=True, max_length=500)


class EventsQuerySerializer(QueryParamsSerializer):
    account = serializers.CharField(required=False, max_length=64, help_text="Only this account's events.")
    strategy = serializers.CharField(required=False, max_length=64, help_text="Only this strategy's order events.")
    request_id = serializers.CharField(required=False, max_length=64, help_text="Only this order's events.")
    since = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Resume after this event id (the Last-Event-ID header, when sent, takes precedence).",
    )
    heartbeat = serializers.IntegerField(
        required=False, default=15, min_value=1, max_value=300, help_text="Seconds between heartbeats (default 15)."
    )

    def validate_request_id(self, value):
        return request_id_checked(value)


class SettleRequestSerializer(StrictBodySerializer):
    outcome = serializers.ChoiceField(
        choices=[("not_placed", "not placed"), ("placed", "placed")],
        help_text="What the operator found on the exchange: the order was not placed, or placed as exchange_order_id.",
    )
    exchange_order_id = serializers.RegexField(
        r"^[0-9A-Za-z_-]{1,64}$",
        required=False,
        help_text="The exchange's order id (required for `placed`).",
    )

    def validate(self, data):
        if data["outcome"] == "placed" and not data.get("exchange_order_id"):
            raise serializers.ValidationError({"exchange_order_id": ["Required when the outcome is 'placed'."]})
        if data["outcome"] == "not_placed" and data.get("exchange_order_id"):
            raise serializers.ValidationError({"exchange_order_id": ["Only for the outcome 'placed'."]})
        return data
