"""Input shapes of the API: the form of each field, nothing that needs the database."""

import re

from rest_framework import serializers

from orders.models import AmountUnit, MarginMode, OrderType, Side

# ccxt's unified symbols: BASE/QUOTE (spot), BASE/QUOTE:SETTLE (perpetual swap),
# BASE/QUOTE:SETTLE-YYMMDD (future), ...-STRIKE-C|P (option).
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20}(-\d{6}(-\d+(\.\d+)?-[CP])?)?)?$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Stored as "<user id>:<key>#<index>" in a 128-character column.
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")


class OrderSubmitSerializer(serializers.Serializer):
    account_id = serializers.CharField(max_length=64)
    symbol = serializers.CharField(max_length=64, help_text="ccxt unified symbol, e.g. BTC/USDT or BTC/USDT:USDT")
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    amount = serializers.DecimalField(max_digits=30, decimal_places=12, coerce_to_string=False)
    amount_unit = serializers.ChoiceField(choices=AmountUnit.choices, required=False, default=AmountUnit.BASE)
    price = serializers.DecimalField(
        max_digits=30, decimal_places=12, coerce_to_string=False, required=False, allow_null=True
    )
    leverage = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=125)
    margin_mode = serializers.ChoiceField(
        choices=[MarginMode.CROSS, MarginMode.ISOLATED], required=False, allow_null=True, allow_blank=True
    )
    reduce_only = serializers.BooleanField(required=False, default=False)
    strategy_name = serializers.CharField(max_length=64, required=False, default="manual", allow_blank=False)
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    expires_in = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=7 * 24 * 3600)
    request_id = serializers.CharField(required=False, allow_null=True, max_length=64)

    def to_internal_value(self, data):
        # A misspelt field (e.g. "ammount") must not be silently ignored on a trade.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)

    def validate_symbol(self, value: str) -> str:
        if not SYMBOL_RE.match(value):
            raise serializers.ValidationError(
                "Use ccxt's unified form: BASE/QUOTE for spot (BTC/USDT), BASE/QUOTE:SETTLE for swaps (BTC/USDT:USDT)."
            )
        return value

    def validate_amount(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return value

    def validate_price(self, value):
        if value is not None and value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return value

    def validate_request_id(self, value):
        if value is not None and not REQUEST_ID_RE.match(value):
            raise serializers.ValidationError("1 to 64 letters, digits or _ . : - only.")
        return value

    def validate(self, attrs):
        if attrs["order_type"] == OrderType.LIMIT and attrs.get("price") is None:
            raise serializers.ValidationError({"price": ["A limit order needs a price."]})
        if attrs["order_type"] == OrderType.MARKET and attrs.get("price") is not None:
            raise serializers.ValidationError({"price": ["A market order takes no price."]})
        return attrs


class OrdersQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=100, min_value=1)
    account = serializers.CharField(required=False, max_length=64)

    def validate_limit(self, value):
        from django.conf import settings

        cap = settings.ORDER_SCHEDULER["MAX_ORDERS_LIMIT"]
        if value > cap:
            raise serializers.ValidationError(f"At most {cap}.")
        return value
