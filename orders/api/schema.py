"""The shapes of the API's responses, for the OpenAPI schema (/api/schema/).

The views render the selectors' dicts and orders.representation.OrderSerializer; these
serializers only describe that output (tests validate every response they receive
against the published schema, so a drift fails there).
"""

from django.conf import settings
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from orders.api.serializers import ACCOUNT_ID_RE, IDEMPOTENCY_KEY_RE, OrderSubmitSerializer
from orders.models import AccountMode
from orders.representation import OrderSerializer
from orders.validation import REQUEST_ID_RE, SYMBOL_RE

FIELD_ERRORS = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}


@extend_schema_field({"anyOf": [FIELD_ERRORS, {"type": "array", "items": FIELD_ERRORS}]})
class ErrorsField(serializers.JSONField):
    pass


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = serializers.CharField(help_text="What went wrong, in one line.")
    errors = ErrorsField(
        required=False,
        help_text="Messages per field or query parameter; for a batch submit, a list with one such object per order "
        "(empty for the valid ones).",
    )


class TodayStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField(
        help_text="success / (success + failed) * 100, two decimals; 0 when no order was decided."
    )


class DaySummarySerializer(TodayStatsSerializer):
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Queued, processing or being reconciled.")


class AccountStatusSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    mode = serializers.ChoiceField(choices=AccountMode.choices)
    enabled = serializers.BooleanField()
    paused = serializers.BooleanField()
    pause_reason = serializers.CharField(allow_blank=True)
    config_error = serializers.CharField(allow_blank=True, help_text="Why the account cannot trade, if it cannot.")
    queue_size = serializers.IntegerField(help_text="Orders queued for this account.")
    in_flight = serializers.IntegerField(help_text="Orders at the exchange or being reconciled.")
    locked = serializers.BooleanField(help_text="A worker holds the account's lease now.")
    last_success_at = serializers.DateTimeField(allow_null=True, help_text="Last order the exchange accepted.")
    last_error_at = serializers.DateTimeField(allow_null=True, help_text="Last order that failed.")
    last_error = serializers.CharField(allow_blank=True, help_text="Error code and message of that order.")
    degraded = serializers.BooleanField(
        help_text="The exchange cannot be reached or is under maintenance: orders are held until it answers or they expire."
    )
    degraded_reason = serializers.CharField(allow_blank=True)
    degraded_since = serializers.DateTimeField(allow_null=True)
    insecure_endpoint = serializers.BooleanField(
        help_text="The account talks to something other than https on an OKX host (allowed only by "
        "ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL)."
    )


class TelegramStatusSerializer(serializers.Serializer):
    """The delivery details are null for users who may not operate (pause/resume)."""

    enabled = serializers.BooleanField(help_text="TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are set.")
    pending = serializers.IntegerField(allow_null=True, help_text="Notifications waiting to be delivered.")
    last_sent_at = serializers.DateTimeField(allow_null=True)
    next_try_at = serializers.DateTimeField(allow_null=True, help_text="Delivery paused until then (429 or errors).")
    last_error = serializers.CharField(allow_blank=True, allow_null=True)
    last_error_at = serializers.DateTimeField(allow_null=True)


class StatusSerializer(serializers.Serializer):
    running = serializers.BooleanField(help_text="A django-q2 cluster is alive (its heartbeat is under 3 s old).")
    queue_size = serializers.IntegerField(help_text="Orders queued, all accounts.")
    locked_accounts = serializers.ListField(
        child=serializers.CharField(), help_text="Accounts whose lease a worker holds now."
    )
    total_accounts = serializers.IntegerField(help_text="Accounts in the accounts file.")
    today_stats = TodayStatsSerializer(help_text="Orders created today (configured time zone).")
    clusters_alive = serializers.IntegerField()
    workers_alive = serializers.IntegerField()
    in_flight = serializers.IntegerField(help_text="Orders at the exchange or being reconciled, all accounts.")
    oldest_queued_age_seconds = serializers.FloatField(
        allow_null=True, help_text="How long the oldest queued order has waited; null when none is queued."
    )
    trading_paused = serializers.BooleanField(help_text="The desk-wide kill switch: no account sends orders.")
    trading_pause_reason = serializers.CharField(allow_blank=True)
    telegram = TelegramStatusSerializer()
    accounts = AccountStatusSerializer(many=True)


class StatusResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    status = StatusSerializer()


class OrdersResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    orders = OrderSerializer(many=True, help_text="Newest first.")
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as ?cursor= (with the same filters) for the next page; null on the last page."
    )
    has_more = serializers.BooleanField(help_text="Older matching orders exist beyond this page.")


class OrderDetailResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    order = OrderSerializer()


class GroupStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField()


class DurationFiguresSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Orders in the sample that have this duration.")
    p50 = serializers.IntegerField(allow_null=True, help_text="Median, ms (nearest rank); null without orders.")
    p95 = serializers.IntegerField(allow_null=True, help_text="95th percentile, ms (nearest rank).")
    max = serializers.IntegerField(allow_null=True, help_text="Longest, ms.")


class DurationsSerializer(serializers.Serializer):
    sample_limit = serializers.IntegerField(
        help_text="The figures cover the latest this many orders created today that have started."
    )
    queue_wait_ms = DurationFiguresSerializer(help_text="Created -> started.")
    execution_ms = DurationFiguresSerializer(help_text="Started -> finished (finished orders only).")


class HourSerializer(serializers.Serializer):
    hour = serializers.IntegerField(min_value=0, max_value=23, help_text="Local hour of the day, 0-23.")
    start = serializers.DateTimeField(help_text="Start of the hour, local time with its offset.")
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()


class HourlySerializer(serializers.Serializer):
    today = HourSerializer(many=True, help_text="24 buckets, local hours 0-23.")
    yesterday = HourSerializer(many=True, help_text="24 buckets, local hours 0-23.")


class StatsFiltersSerializer(serializers.Serializer):
    account = serializers.CharField(allow_null=True)
    strategy = serializers.CharField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    today = DaySummarySerializer()
    yesterday = DaySummarySerializer()
    by_account = serializers.DictField(child=GroupStatsSerializer(), help_text="Today, by account id.")
    by_strategy = serializers.DictField(child=GroupStatsSerializer(), help_text="Today, by strategy name.")
    by_symbol = serializers.DictField(child=GroupStatsSerializer(), help_text="Today, by symbol.")
    durations = DurationsSerializer()
    hourly = HourlySerializer()
    date = serializers.DateField(help_text="Today in the configured time zone.")
    time_zone = serializers.CharField(help_text="The configured time zone (TIME_ZONE).")
    filters = StatsFiltersSerializer()


class StatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    stats = StatsSerializer()


class SubmitResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    request_id = serializers.CharField()
    message = serializers.CharField()
    created = serializers.BooleanField(help_text="False when this replays an earlier submission.")
    status = serializers.CharField()
    order = OrderSerializer()


class SubmitBatchResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    request_ids = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField()
    created = serializers.BooleanField()
    orders = OrderSerializer(many=True)


SUBMIT_REQUEST = PolymorphicProxySerializer(
    component_name="SubmitRequest",
    serializers=[OrderSubmitSerializer, OrderSubmitSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)
SUBMIT_RESPONSE = PolymorphicProxySerializer(
    component_name="SubmitResult",
    serializers=[SubmitResponseSerializer, SubmitBatchResponseSerializer],
    resource_type_field_name=None,
    many=False,
)


class OrderActionResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    request_id = serializers.CharField(help_text="The order cancelled, or the new order of a retry.")
    message = serializers.CharField()
    order = OrderSerializer()


class ControlResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField()
    status = StatusSerializer()


EVENTS_DESCRIPTION = """Server-Sent Events (`text/event-stream`): one frame per order or service event,
`id: <event id>` and `data: <JSON>` with `id, at, kind, request_id, account_id, strategy_name, symbol,
side, from_status, to_status, actor, username, reason, details`. Kinds: `created`, `status`, `exchange`
(exchange state or fills changed; `details` carries them), `account_paused`, `account_resumed`,
`account_degraded`, `account_recovered`, `trading_paused`, `trading_resumed`, `cluster_up`,
`cluster_down` (service events have `request_id` null).

Control frames: `event: ready` once the missed events were sent (its id is the resume point);
`event: heartbeat` every `heartbeat` seconds without other traffic (its id moves the resume point past
events the filters skipped); `event: reset` when the client is too far behind (re-read the order list,
then follow from its id); `event: shutdown` when the server stops (reconnect to resume).

Reconnect with the `Last-Event-ID` header (browsers do it themselves) or `since=<id>` to receive exactly
the events after that id, each once. Same authentication and account scoping as the order list."""


def tighten(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing: the rules the API enforces that serializer
    introspection cannot see, so the published schema accepts exactly what the API does
    (a schema-valid request is never refused as bad input, tests/api/test_schema.py proves it
    with schemathesis). Registered in SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]."""
    schemas = result.get("components", {}).get("schemas", {})
    if order := schemas.get("OrderSubmit"):
        _tighten_order(order)
    if submit := schemas.get("SubmitRequest"):
        _tighten_batch(submit)
    if settle := schemas.get("SettleRequest"):
        _tighten_settle(settle)
    if control := schemas.get("ControlRequest"):
        control["properties"]["account"]["pattern"] = r"^$|" + ACCOUNT_ID_RE.pattern
        control["additionalProperties"] = False
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if operation.get("operationId") == "submit":
                operation["requestBody"]["required"] = True  # an order, or a list of them
            for parameter in operation.get("parameters", []):
                _tighten_parameter(parameter)
    return result


def _tighten_order(order: dict) -> None:
    props = order["properties"]
    props["account_id"]["pattern"] = ACCOUNT_ID_RE.pattern
    props["account_id"]["description"] = "An account of the accounts file that you may trade."
    props["account_id"]["examples"] = ["account_main"]
    props["symbol"]["pattern"] = SYMBOL_RE.pattern
    for name in ("amount", "price"):  # positive, under 10^18; finer than 1e-12 is rounded down
        props[name].pop("exclusiveMinimum", None)
        props[name]["minimum"] = 0.000000000001
    props["request_id"]["pattern"] = REQUEST_ID_RE.pattern
    # Blank (or only spaces) is refused, so is a NUL character.
    props["strategy_name"]["pattern"] = r"^[^\x00]*[^\s\x00][^\x00]*$"
    order["allOf"] = [
        {  # a market order takes no price
            "if": {"properties": {"order_type": {"const": "market"}}, "required": ["order_type"]},
            "then": {"properties": {"price": {"type": "null"}}},
        },
        {  # a limit order needs one
            "if": {"properties": {"order_type": {"const": "limit"}}, "required": ["order_type"]},
            "then": {"required": ["price"], "properties": {"price": {"type": "number"}}},
        },
        {  # contracts are for swaps and futures (BASE/QUOTE:SETTLE...) only
            "if": {"properties": {"amount_unit": {"const": "contracts"}}, "required": ["amount_unit"]},
            "then": {"properties": {"symbol": {"pattern": ":"}}},
        },
    ]
    order["additionalProperties"] = False  # unknown fields are refused


def _tighten_batch(submit: dict) -> None:
    for option in submit.get("oneOf", []):
        if option.get("type") == "array":
            option.update(minItems=1, maxItems=settings.ORDER_SCHEDULER["MAX_BATCH"])


def _tighten_settle(settle: dict) -> None:
    settle["additionalProperties"] = False
    settle["allOf"] = [
        {  # placed: as which exchange order; not placed: no exchange order id
            "if": {"properties": {"outcome": {"const": "placed"}}, "required": ["outcome"]},
            "then": {"required": ["exchange_order_id"]},
            "else": {"not": {"required": ["exchange_order_id"]}},
        }
    ]


def _tighten_parameter(parameter: dict) -> None:
    """A header or query parameter as the API checks it."""
    schema = parameter["schema"]
    query = parameter["in"] == "query"
    if parameter["name"] == "Idempotency-Key":
        schema["pattern"] = IDEMPOTENCY_KEY_RE.pattern
    elif query and "enum" in schema:
        schema["enum"] = [*schema["enum"], ""]  # blank counts as absent
        schema.pop("minLength", None)
    elif query and "enum" in schema.get("items", {}):
        schema["items"]["enum"] = [*schema["items"]["enum"], ""]
    elif query and parameter["name"] == "account":
        schema["pattern"] = r"^$|" + ACCOUNT_ID_RE.pattern
    elif query and parameter["name"] == "limit":
        schema["maximum"] = settings.ORDER_SCHEDULER["MAX_ORDERS_LIMIT"]
    elif query and parameter["name"] == "q":
        schema["pattern"] = r"^$|" + REQUEST_ID_RE.pattern
    elif query and schema.get("type") == "string":
        schema.setdefault("pattern", r"^[^\x00]*$")  # no NUL character
