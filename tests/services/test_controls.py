"""The desk-wide and per-account kill switches (orders.services.controls)."""

import pytest

from orders.models import Control, Order, OrderStatus, PaperOrder
from orders.services import drain, recovery
from orders.services.controls import pause, resume
from tests.helpers import submit


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
