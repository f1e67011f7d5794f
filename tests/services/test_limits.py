"""Pre-trade limits (orders.services.limits), as the submit service applies them."""

from decimal import Decimal

import pytest

from orders.models import Account, Order, OrderStatus
from orders.services.errors import Invalid
from orders.services.submit import order_submit
from tests.helpers import ORDER


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
        assert (
            order_submit(items=[{**ORDER, "account_id": "account_main", **fields}]).orders[0].status
            == OrderStatus.QUEUED
        )  # 0.4 x 40000 = 16000: within the limit
        return
    with pytest.raises(Invalid) as refused:
        order_submit(items=[{**ORDER, "account_id": "account_main", **fields}])
    assert message in refused.value.errors[field]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_it_values_a_market_order_at_the_latest_fill_not_the_static_reference(limited):
    from django.utils import timezone

    from tests.helpers import make_order

    # account_main's configured reference is 65000; the market has since moved to 80000.
    make_order(created_at=timezone.now(), account="account_poit_main", average_price=Decimal("80000"))

    with pytest.raises(Invalid) as refused:
        order_submit(
            items=[{**ORDER, "account_id": "account_main", "amount": Decimal("0.3")}]
        )  # 0.3 x 65000 = 19500 passed; 0.3 x 80000 = 24000 does not

    assert "Notional 24000.00 USDT" in refused.value.errors["amount"][0]
    assert Order.objects.filter(account_id="account_main").count() == 0
