"""Kill switches, pre-trade limits and the audit trail, through services and commands."""

import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, AuditEvent, Control, Order, OrderStatus, PaperOrder
from orders.services import drain, recovery, transitions
from orders.services.controls import pause, resume
from orders.services.submit import SubmitError, order_submit


def submit(account="account_main", **fields) -> Order:
    item = {"account_id": account, "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market",
            "amount": Decimal("0.001"), **fields}  # fmt: skip
    return order_submit(items=[item], source="test").orders[0]


@pytest.mark.django_db
def test_it_holds_orders_of_a_paused_account_until_resumed(accounts):
    call_command("pause", "--account", "account_main", "--reason", "funding check")
    order = submit()

    assert drain.drain_account(account_id="account_main") == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.QUEUED
    assert "funding check" in Account.objects.get(pk="account_main").pause_reason
    assert recovery.recover() == []  # a paused account is not woken either

    call_command("resume", "--account", "account_main")
    drain.drain_account(account_id="account_main")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SUCCESS


@pytest.mark.django_db
def test_it_holds_every_account_while_all_trading_is_paused(accounts):
    pause(reason="exchange incident", source="test")
    orders = [submit(account=a) for a in ("account_main", "account_poit_main")]

    for account_id in ("account_main", "account_poit_main"):
        assert drain.drain_account(account_id=account_id) == 0
    assert recovery.recover() == []
    assert PaperOrder.objects.count() == 0
    assert Control.objects.get(pk=1).reason == "exchange incident"

    resume(source="test")
    for account_id in ("account_main", "account_poit_main"):
        drain.drain_account(account_id=account_id)
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {OrderStatus.SUCCESS}


@pytest.mark.django_db
def test_it_refuses_submits_while_paused_when_configured_to(accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "PAUSED_SUBMITS": "refuse"}
    pause(account_id="account_main", reason="maintenance window")

    with pytest.raises(SubmitError) as refused:
        submit()

    assert refused.value.status == 409
    assert "maintenance window" in refused.value.errors["account_id"][0]
    assert Order.objects.count() == 0
    submit(account="account_poit_main")  # other accounts still trade
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_stops_a_drain_before_the_next_order_when_paused_meanwhile(accounts):
    first, second = submit(), submit()
    assert transitions.claim([first], actor=transitions.WORKER)
    pause(account_id="account_main", reason="stop now")

    drain.drain_account(account_id="account_main")

    assert Order.objects.get(pk=second.pk).status == OrderStatus.QUEUED


@pytest.mark.django_db
def test_it_reports_an_unknown_account_in_one_line(accounts):
    with pytest.raises(CommandError, match="Unknown account 'nope'"):
        call_command("pause", "--account", "nope", "--reason", "x")


@pytest.fixture
def limited(accounts):
    Account.objects.filter(pk="account_main").update(
        limits={"max_amount": 0.5, "max_notional": 20000, "max_leverage": 20}
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount": Decimal("0.6")}, "amount", "0.6 BTC is above this account's limit of 0.5 BTC per order (max_amount)."),
        ({"amount": Decimal("0.4")}, "amount", "Notional 26000.00 USDT is above this account's limit of 20000 USDT per order (max_notional)."),
        ({"amount": Decimal("0.4"), "order_type": "limit", "price": Decimal("40000")}, "amount", None),
        ({"leverage": 21}, "leverage", "Leverage 21 is above this account's limit of 20 (max_leverage)."),
        # A sell limit far below the market (65000) fills at the market: valued there.
        ({"amount": Decimal("0.4"), "side": "sell", "order_type": "limit", "price": Decimal("1")}, "amount",
         "Notional 26000.00 USDT is above this account's limit of 20000 USDT per order (max_notional)."),
        ({"amount": Decimal("0.4"), "side": "sell", "order_type": "limit", "price": Decimal("40000")}, "amount",
         "Notional 26000.00 USDT is above this account's limit of 20000 USDT per order (max_notional)."),
        ({"amount": Decimal("0.3"), "side": "sell", "order_type": "limit", "price": Decimal("70000")}, "amount",
         "Notional 21000.00 USDT is above this account's limit of 20000 USDT per order (max_notional)."),
    ],
)  # fmt: skip
def test_it_enforces_pre_trade_limits_naming_the_limit(limited, fields, field, message):
    if message is None:
        assert submit(**fields).status == OrderStatus.QUEUED  # 0.4 x 40000 = 16000: within the limit
        return
    with pytest.raises(SubmitError) as refused:
        submit(**fields)
    assert message in refused.value.errors[field]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_values_a_market_order_at_the_latest_fill_not_the_static_reference(limited):
    from django.utils import timezone

    from tests.api_helpers import make_order

    # account_main's configured reference is 65000; the market has since moved to 80000.
    make_order(created_at=timezone.now(), account="account_poit_main", average_price=Decimal("80000"))

    with pytest.raises(SubmitError) as refused:
        submit(amount=Decimal("0.3"))  # 0.3 x 65000 = 19500 passed; 0.3 x 80000 = 24000 does not

    assert "Notional 24000.00 USDT" in refused.value.errors["amount"][0]
    assert Order.objects.filter(account_id="account_main").count() == 0


@pytest.mark.django_db
def test_it_records_state_changes_in_the_audit_trail(accounts):
    order = submit()
    pause(account_id="account_main", reason="audit me")
    resume(account_id="account_main")
    call_command("create_api_user", "alice", "--role", "trader", "--accounts", "account_main")
    call_command("revoke_token", "alice")

    actions = list(AuditEvent.objects.order_by("id").values_list("action", "target"))
    assert ("submit", order.request_id) in actions
    assert ("pause", "account_main") in actions and ("resume", "account_main") in actions
    assert ("token_created", "alice") in actions and ("token_revoked", "alice") in actions
    assert AuditEvent.objects.filter(action="account_sync").exists()  # the accounts fixture synced
    assert AuditEvent.objects.get(action="submit").source == "test"


@pytest.mark.django_db
def test_it_audits_a_failed_login_without_the_password(client, accounts):
    client.post("/accounts/login/", {"username": "mallory", "password": "hunter2-SECRET"})

    event = AuditEvent.objects.get(action="login_failed")
    assert event.target == "mallory"
    assert event.source == "127.0.0.1"
    assert "hunter2" not in json.dumps(event.changes)


@pytest.mark.django_db
def test_it_exports_the_audit_trail_as_jsonl_filtered(accounts, tmp_path):
    submit()
    pause(account_id="account_main", reason="export me")
    target = tmp_path / "audit.jsonl"

    call_command("export_audit", "--action", "pause", "--output", str(target))

    [line] = [json.loads(text) for text in target.read_text().splitlines()]
    assert (line["action"], line["target"], line["changes"]) == ("pause", "account_main", {"reason": "export me"})
    with pytest.raises(CommandError, match="--since"):
        call_command("export_audit", "--since", "yesterday-ish")
