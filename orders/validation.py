"""The rules an order's fields follow, whoever supplies them: the submit API
(orders.api.serializers.OrderSubmitSerializer) and the history import
(orders.services.order_import) check an order with these same fields, so an imported
order could have been submitted."""

import re
from decimal import ROUND_DOWN, Decimal

from rest_framework import serializers

from orders.models import AmountUnit, MarginMode, OrderType, Side

# ccxt's unified symbols: BASE/QUOTE (spot), BASE/QUOTE:SETTLE (perpetual swap),
# BASE/QUOTE:SETTLE-YYMMDD (future), ...-STRIKE-C|P (option).
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20}(-\d{6}(-\d+(\.\d+)?-[CP])?)?)?$")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SMALLEST = Decimal("0.000000000001")


class OrderDecimalField(serializers.DecimalField):
    """A positive amount or price below 10^15. Digits past the 12th decimal (a binary
    float's noise, 0.1 + 0.2) are rounded down, never up: an order is never larger than
    asked (the schema says minimum 1e-12, so nothing rounds to 0). 15 whole digits, not
    the column's 18: SQLite keeps decimals as binary floats, and a value near 10^18 read
    back rounds up to 19 digits, which would break every later read of the order."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=27, decimal_places=12, coerce_to_string=False, rounding=ROUND_DOWN, **kwargs)

    def validate_precision(self, value):
        sign, digits, exponent = value.as_tuple()
        if len(digits) + exponent > self.max_whole_digits:
            self.fail("max_whole_digits", max_whole_digits=self.max_whole_digits)
        return value


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF would turn 5 or true into "5" or "True"."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class OrderFieldsSerializer(serializers.Serializer):
    """An order's fields as a client states them, each checked on its own. Rules across
    fields (a limit order needs a price) are about what can be sent to the exchange and
    belong to the submit API."""

    account_id = StrictCharField(max_length=64)
    symbol = StrictCharField(max_length=64, help_text="ccxt unified symbol, e.g. BTC/USDT or BTC/USDT:USDT")
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    amount = OrderDecimalField()
    amount_unit = serializers.ChoiceField(choices=AmountUnit.choices, required=False, default=AmountUnit.BASE)
    price = OrderDecimalField(required=False, allow_null=True)
    leverage = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=125)
    margin_mode = serializers.ChoiceField(
        choices=[MarginMode.CROSS, MarginMode.ISOLATED], required=False, allow_null=True, allow_blank=True
    )
    reduce_only = serializers.BooleanField(required=False, default=False)
    strategy_name = StrictCharField(max_length=64, required=False, default="manual", allow_blank=False)
    priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
    expires_in = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=7 * 24 * 3600)
    request_id = StrictCharField(required=False, allow_null=True, max_length=64)

    def validate_symbol(self, value: str) -> str:
        if not SYMBOL_RE.match(value):
            raise serializers.ValidationError(
                "Use ccxt's unified form: BASE/QUOTE for spot (BTC/USDT), BASE/QUOTE:SETTLE for swaps (BTC/USDT:USDT)."
            )
        return value

    def validate_amount(self, value):
        if value <= 0:
            raise serializers.ValidationError(f"Must be at least {SMALLEST:f}.")
        return value

    def validate_price(self, value):
        if value is not None and value <= 0:
            raise serializers.ValidationError(f"Must be at least {SMALLEST:f}.")
        return value

    def validate_request_id(self, value):
        return request_id_checked(value)


def request_id_checked(value: str | None) -> str | None:
    """A client's request id, in the one form the API takes (None: none given)."""
    if value is not None and not REQUEST_ID_RE.match(value):
        raise serializers.ValidationError("1 to 64 letters, digits or _ . : - only.")
    return value
