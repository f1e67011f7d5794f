"""The submit service (orders.services.submit): what it refuses and the client order ids it gives."""

import pytest

from orders.models import Order
from orders.services.controls import pause
from orders.services.errors import Conflict
from orders.services.submit import client_order_id_for, order_submit
from tests.helpers import ORDER


@pytest.mark.django_db
def test_it_refuses_submits_while_paused_when_configured_to(accounts, settings):
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "PAUSED_SUBMITS": "refuse"}
    pause(account_id="account_main", reason="maintenance window")

    with pytest.raises(Conflict) as refused:
        order_submit(items=[{**ORDER, "account_id": "account_main"}])

    assert "maintenance window" in refused.value.errors["account_id"][0]
    assert Order.objects.count() == 0
    order_submit(items=[{**ORDER, "account_id": "account_poit_main"}])  # other accounts still trade
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_it_salts_client_order_ids_with_the_installation(accounts, monkeypatch):
    from orders.services import submit as submit_service

    ours = client_order_id_for("ORD_same")
    monkeypatch.setattr(submit_service, "installation_salt", lambda: "another-installation")
    theirs = client_order_id_for("ORD_same")

    assert ours != theirs
    assert all(len(cid) == 32 and cid.isalnum() for cid in (ours, theirs))
