"""The Django admin: accounts, orders, the audit trail and the notification outbox.

What the services own is read-only here (orders, accounts, audit events, notifications);
the admin actions call the same services as the API (orders.services.lifecycle for
cancel and retry, orders.services.controls for pause and resume), under the same roles.
No secret is ever shown: an account's page says whether each secret's environment
variable is set, never its value."""

import os

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from orders import selectors
from orders.models import Account, AuditEvent, Notification, Order, OrderEvent, OrderStatus
from orders.representation import OrderSerializer
from orders.services import access, controls, lifecycle, reconcile
from orders.services.accounts import SECRET_FIELDS
from orders.services.audit import audit_lines, client_address
from orders.services.errors import DomainError

# One admin action touches at most this many orders: "select all" over a million rows
# must not cancel or resubmit them by accident.
ACTION_LIMIT = 100
STATUS_COLOURS = {
    OrderStatus.QUEUED: "#b7791f",
    OrderStatus.PROCESSING: "#2b6cb0",
    OrderStatus.UNKNOWN: "#805ad5",
    OrderStatus.SUCCESS: "#2f855a",
    OrderStatus.FAILED: "#c53030",
    OrderStatus.CANCELLED: "#718096",
    OrderStatus.EXPIRED: "#c05621",
}


class DistinctValuesFilter(admin.SimpleListFilter):
    """A filter over an indexed Order column whose choices come from an index skip-scan
    (orders.selectors.distinct_values), not a scan of every order."""

    field = ""

    def lookups(self, request, model_admin):
        return [(value, value) for value in selectors.distinct_values(self.field)]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class StrategyFilter(DistinctValuesFilter):
    title = _("strategy")
    parameter_name = field = "strategy_name"


class SymbolFilter(DistinctValuesFilter):
    title = _("symbol")
    parameter_name = field = "symbol"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the services write: viewable, never added, edited or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "mode", "enabled", "paused", "lease", "secrets", "config_error", "in_config"]
    list_filter = ["mode", "enabled", "paused", "in_config"]
    search_fields = ["id", "name"]
    actions = ["pause_accounts", "resume_accounts"]
    fieldsets = [
        (None, {"fields": ["id", "name", "exchange", "mode", "enabled", "in_config", "config_error"]}),
        (_("Secrets (environment variables; values are never shown)"), {"fields": ["api_key", "secret", "passphrase"]}),
        (_("Exchange"), {"fields": ["hostname", "base_url", "margin_mode", "default_leverage", "options", "limits"]}),
        (_("Kill switch"), {"fields": ["paused", "pause_reason"]}),
        (_("Lease"), {"fields": ["lease", "lease_owner", "lease_until"]}),
        (_("Activity"), {"fields": ["last_success_at", "last_error_at", "last_error", "created_at", "updated_at"]}),
    ]
    readonly_fields = [name for section, options in fieldsets for name in options["fields"]]

    def get_queryset(self, request):
        return access.restrict(super().get_queryset(request), request.user, "pk")

    def has_operate_permission(self, request) -> bool:
        return access.user_can_operate(request.user)

    @staticmethod
    def _secret(account: Account, field: str) -> str:
        name = getattr(account, field)
        if not name:
            return _("not needed (paper)") if account.mode == "paper" else _("no variable named")
        state = _("set") if os.environ.get(name) else _("missing")
        return format_html("<code>{}</code>: {}", name, state)

    @admin.display(description=_("API key"))
    def api_key(self, account):
        return self._secret(account, "api_key_env")

    @admin.display(description=_("Secret"))
    def secret(self, account):
        return self._secret(account, "secret_env")

    @admin.display(description=_("Passphrase"))
    def passphrase(self, account):
        return self._secret(account, "passphrase_env")

    @admin.display(description=_("Secrets"))
    def secrets(self, account):
        names = [getattr(account, field) for field in SECRET_FIELDS if getattr(account, field)]
        if not names:
            return "—"
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            return format_html('<span style="color:#c53030">{}</span>', _("missing: %s") % ", ".join(missing))
        return format_html('<span style="color:#2f855a">{}</span>', _("all set"))

    @admin.display(description=_("Lease"))
    def lease(self, account):
        if account.lease_owner and account.lease_until and account.lease_until > timezone.now():
            return _("held by %(owner)s until %(until)s") % {
                "owner": account.lease_owner,
                "until": timezone.localtime(account.lease_until).strftime("%H:%M:%S"),
            }
        return _("free")

    @admin.action(description=_("Pause the selected accounts"), permissions=["operate"])
    def pause_accounts(self, request, queryset):
        def pause(account_id: str) -> str:
            controls.pause(
                account_id=account_id, reason="paused in the admin", user=request.user, source=client_address(request)
            )
            return _("Account %s paused.") % account_id

        self._each_account(request, queryset, pause)

    @admin.action(description=_("Resume the selected accounts"), permissions=["operate"])
    def resume_accounts(self, request, queryset):
        def resume(account_id: str) -> str:
            controls.resume(account_id=account_id, user=request.user, source=client_address(request))
            return _("Account %s resumed.") % account_id

        self._each_account(request, queryset, resume)

    def _each_account(self, request, queryset, act) -> None:
        _act_each(self, request, queryset.values_list("pk", flat=True), act)


def _act_each(model_admin, request, keys, act) -> None:
    """`act` on each selected row's key, its message shown; the service decides who may
    (a refusal is shown as a warning)."""
    for key in keys:
        try:
            text = act(key)
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.WARNING)
        else:
            model_admin.message_user(request, text, messages.SUCCESS)


class OrderActionForm(ActionForm):
    # For "settle as placed": the exchange's order id the operator found.
    exchange_order_id = forms.CharField(required=False, max_length=64, label=_("exchange order id"))


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "request_id",
        "created_at",
        "account_name",
        "symbol",
        "side",
        "order_type",
        "amount",
        "price",
        "leverage",
        "strategy_name",
        "status_badge",
        "order_id",
    ]
    list_filter = ["status", "account", StrategyFilter, SymbolFilter]
    date_hierarchy = "created_at"
    search_fields = ["request_id", "order_id", "client_order_id"]
    search_help_text = _("A request id, exchange order id or client order id, whole or its beginning.")
    list_per_page = 100
    show_full_result_count = False  # one COUNT over the filtered orders, not a second over all
    actions = ["cancel_orders", "retry_orders", "settle_not_placed", "settle_placed"]
    action_form = OrderActionForm
    fieldsets = [
        (
            _("Order"),
            {
                "fields": [
                    "request_id", "client_order_id", "idempotency_key", "account", "symbol", "side", "order_type",
                    "amount", "amount_unit", "price", "leverage", "margin_mode", "reduce_only", "strategy_name",
                    "priority", "created_by",
                ]
            },
        ),
        (
            _("Outcome"),
            {
                "fields": [
                    "status", "order_id", "exchange_state", "filled_amount", "average_price", "fee", "fee_currency",
                    "error_code", "error_message", "attempts", "retry_of", "retries_list",
                ]
            },
        ),
        (
            _("Timing"),
            {
                "fields": [
                    "created_at", "started_at", "finished_at", "queue_wait", "execution", "expires_at",
                    "deadline_at", "cancel_requested_at", "exchange_checked_at",
                ]
            },
        ),
        (_("Integrity"), {"fields": ["payload_hash"]}),
    ]  # fmt: skip
    readonly_fields = [name for section, options in fieldsets for name in options["fields"]]

    def get_queryset(self, request):
        return access.restrict(super().get_queryset(request), request.user)

    def get_search_results(self, request, queryset, search_term):
        """Whole ids or their beginning, through each id's index (orders.selectors.search):
        admin's default icontains would read every order."""
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return selectors.search(queryset, term, accounts=access.allowed_account_ids(request.user)), False
        except selectors.QueryError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return queryset.none(), False

    def has_trade_permission(self, request) -> bool:
        return access.user_can_trade(request.user)

    def has_operate_permission(self, request) -> bool:
        return access.user_can_operate(request.user)

    @admin.display(description=_("account"), ordering="account_id")
    def account_name(self, order):
        return order.account_id

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, order):
        return format_html(
            '<strong style="color:{}">{}</strong>', STATUS_COLOURS.get(order.status, "inherit"), order.status
        )

    @admin.display(description=_("retried as"))
    def retries_list(self, order):
        retries = order.retries.order_by("created_at").values_list("pk", "request_id", "status")
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            (
                (reverse("admin:orders_order_change", args=[pk]), request_id, status)
                for pk, request_id, status in retries
            ),
        )
        return links or "—"

    @admin.display(description=_("queue wait (ms)"))
    def queue_wait(self, order):
        return OrderSerializer().get_queue_wait_ms(order) if order.started_at else "—"

    @admin.display(description=_("execution (ms)"))
    def execution(self, order):
        return OrderSerializer().get_execution_ms(order) if order.finished_at and order.started_at else "—"

    def _each(self, request, queryset, act) -> None:
        request_ids = list(queryset.values_list("request_id", flat=True)[: ACTION_LIMIT + 1])
        if len(request_ids) > ACTION_LIMIT:
            self.message_user(
                request, _("Select at most %d orders for one action; nothing was done.") % ACTION_LIMIT, messages.ERROR
            )
            return
        _act_each(self, request, request_ids, act)

    @admin.action(description=_("Cancel the selected orders"), permissions=["trade"])
    def cancel_orders(self, request, queryset):
        def cancel(request_id: str) -> str:
            order = lifecycle.order_cancel(request_id=request_id, user=request.user, source=client_address(request))
            if order.status == OrderStatus.CANCELLED:
                return _("Order %s cancelled.") % request_id
            return _("Order %s: cancel requested on the exchange.") % request_id

        self._each(request, queryset, cancel)

    @admin.action(description=_("Retry the selected orders (as new orders)"), permissions=["trade"])
    def retry_orders(self, request, queryset):
        def retry(request_id: str) -> str:
            new = lifecycle.order_retry(request_id=request_id, user=request.user, source=client_address(request))
            return _("Order %(old)s resubmitted as %(new)s.") % {"old": request_id, "new": new.request_id}

        self._each(request, queryset, retry)

    @admin.action(description=_("Settle unknown orders: not placed on the exchange"), permissions=["operate"])
    def settle_not_placed(self, request, queryset):
        def settle(request_id: str) -> str:
            reconcile.order_settle(
                request_id=request_id, placed=False, user=request.user, source=client_address(request)
            )
            return _("Order %s settled as not placed (failed).") % request_id

        self._each(request, queryset, settle)

    @admin.action(
        description=_("Settle an unknown order: placed as the exchange order id given"), permissions=["operate"]
    )
    def settle_placed(self, request, queryset):
        exchange_order_id = request.POST.get("exchange_order_id", "").strip()
        if not exchange_order_id or queryset.count() != 1:
            self.message_user(
                request, _("Select one order and give its exchange order id; nothing was done."), messages.ERROR
            )
            return

        def settle(request_id: str) -> str:
            reconcile.order_settle(
                request_id=request_id,
                placed=True,
                exchange_order_id=exchange_order_id,
                user=request.user,
                source=client_address(request),
            )
            return _("Order %(id)s settled as placed (%(ex)s).") % {"id": request_id, "ex": exchange_order_id}

        self._each(request, queryset, settle)


class AuditUserFilter(admin.SimpleListFilter):
    """Who acted, offering only the names in the events this user may see."""

    title = _("user")
    parameter_name = "username"

    def lookups(self, request, model_admin):
        events = model_admin.get_queryset(request).exclude(username="")  # "" is the system
        names = events.order_by("username").values_list("username", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(username=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "action", "target", "source", "changes"]
    list_filter = ["action", AuditUserFilter]
    search_fields = ["username", "action", "target", "source"]
    date_hierarchy = "at"
    list_per_page = 100
    actions = ["export_jsonl"]
    change_list_template = "admin/orders/auditevent/change_list.html"

    def get_queryset(self, request):
        """A user limited to some accounts sees their own actions and the events about
        their accounts and those accounts' orders, nothing of the others."""
        events = super().get_queryset(request)
        allowed = access.allowed_account_ids(request.user)
        if allowed is None:
            return events
        orders = Order.objects.filter(account_id__in=allowed).values("request_id")
        return events.filter(Q(user=request.user) | Q(target__in=allowed) | Q(target__in=orders))

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="orders_auditevent_export")
        return [export, *super().get_urls()]

    @staticmethod
    def _jsonl(events) -> StreamingHttpResponse:
        response = StreamingHttpResponse(audit_lines(events=events), content_type="application/x-ndjson; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.jsonl"'
        return response

    @admin.action(description=_("Export the selected events as JSONL"))
    def export_jsonl(self, request, queryset):
        return self._jsonl(queryset)

    def export_view(self, request):
        """Every event the change list shows with the same filters and search, as JSONL."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            events = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        return self._jsonl(events)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: the outbox is written by the services and the sender only."""

    list_display = ["id", "event", "created_at", "silent", "sent_at", "gave_up_at", "attempts", "last_error"]
    list_filter = [
        "event",
        "silent",
        ("sent_at", admin.EmptyFieldListFilter),
        ("gave_up_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["text"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    """Every change of an order, an account or the desk, by people and by the service
    (worker, recovery) alike: written by orders.services.transitions only."""

    list_display = [
        "id",
        "at",
        "kind",
        "order",
        "account_id",
        "from_status",
        "to_status",
        "actor",
        "username",
        "reason",
    ]
    list_filter = ["kind", "actor", "to_status"]
    search_fields = ["=order__request_id", "=account_id", "=username"]
    date_hierarchy = "at"
    list_per_page = 100
    list_select_related = ["order"]
    show_full_result_count = False

    def has_view_permission(self, request, obj=None) -> bool:
        return access.user_can_view(request.user)

    def has_module_permission(self, request) -> bool:
        return access.user_can_view(request.user)

    def get_queryset(self, request):
        return access.restrict(super().get_queryset(request), request.user)
