"""POST /api/order-scheduler/orders/<request_id>/settle: an operator states what became
of an order whose outcome is unknown."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.exchanges import get_exchange
from orders.models import Account, AuditEvent, Order, OrderEvent, OrderStatus, PaperOrder
from orders.services.reconcile import ticket_for
from tests.conftest import user_with_role
from tests.helpers import submit

pytestmark = pytest.mark.django_db


def unknown_order(*, account="account_main", deadline_in: float = -5) -> Order:
    order = submit(account=account)
    Order.objects.filter(pk=order.pk).update(
        status=OrderStatus.UNKNOWN,
        sent=True,
        attempts=1,
        error_code="unresolved",
        deadline_at=timezone.now() + timedelta(seconds=deadline_in),
    )
    return Order.objects.select_related("account").get(pk=order.pk)


def settle(client, order_or_id, **body):
    """POST the settlement as JSON, from an API client or a logged-in browser."""
    request_id = getattr(order_or_id, "request_id", order_or_id)
    url = f"/api/order-scheduler/orders/{request_id}/settle"
    return client.post(url, json.dumps(body), content_type="application/json")


def test_it_fails_an_order_an_operator_found_not_placed(api, accounts):
    order = unknown_order()

    response = settle(api, order, outcome="not_placed")

    assert response.status_code == 200, response.json()
    assert response.json()["order"]["status"] == "failed"
    order.refresh_from_db()
    assert (order.status, order.error_code) == (OrderStatus.FAILED, "settled_not_placed")
    assert "Settled by root" in order.error_message
    event = OrderEvent.objects.get(order=order, kind="status", to_status="failed")
    assert (event.from_status, event.actor, event.username) == ("unknown", "operator", "root")
    assert AuditEvent.objects.filter(action="settle", target=order.request_id).exists()


def test_it_records_an_order_placed_as_the_exchange_order_id_given_after_a_look_up(api, accounts):
    order = unknown_order()
    exchange = get_exchange(Account.objects.get(pk="account_main"))
    placed = exchange.place_order(ticket_for(order), deadline_ms=exchange.exchange_time_ms() + 5000)

    response = settle(api, order, outcome="placed", exchange_order_id=placed.order_id)

    assert response.status_code == 200, response.json()
    order.refresh_from_db()
    assert (order.status, order.order_id, order.filled_amount) == (
        OrderStatus.SUCCESS,
        placed.order_id,
        Decimal("0.001"),
    )
    assert PaperOrder.objects.count() == 1  # looked up, never sent


def test_it_refuses_an_exchange_order_id_the_exchange_does_not_know(api, accounts):
    order = unknown_order()

    response = settle(api, order, outcome="placed", exchange_order_id="404404404")

    assert response.status_code == 400
    assert "does not know an order '404404404'" in response.json()["errors"]["exchange_order_id"][0]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.UNKNOWN


def test_it_refuses_not_placed_while_the_exchange_may_still_process_the_request(api, accounts):
    order = unknown_order(deadline_in=60)

    response = settle(api, order, outcome="not_placed")

    assert response.status_code == 409
    assert "may still be processed" in response.json()["error"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.UNKNOWN


def test_it_refuses_an_order_that_is_not_unknown(api, accounts):
    order = unknown_order()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SUCCESS)

    response = settle(api, order, outcome="not_placed")

    assert response.status_code == 409
    assert "only an order whose outcome is unknown" in response.json()["error"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SUCCESS


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "outcome", "This field is required."),
        ({"outcome": "maybe"}, "outcome", '"maybe" is not a valid choice.'),
        ({"outcome": "placed"}, "exchange_order_id", "Required when the outcome is 'placed'."),
        ({"outcome": "not_placed", "exchange_order_id": "1"}, "exchange_order_id", "Only for the outcome 'placed'."),
        ({"outcome": "placed", "exchange_order_id": "a b"}, "exchange_order_id", None),
        ({"outcome": "not_placed", "note": "x"}, "note", "Unknown field."),
    ],
)
def test_it_answers_bad_input_with_a_message_per_field(api, accounts, body, field, message):
    order = unknown_order()

    response = settle(api, order, **body)

    assert response.status_code == 400
    errors = response.json()["errors"][field]
    assert errors and (message is None or errors[0] == message)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.UNKNOWN


def test_it_answers_404_for_an_unknown_order_or_another_accounts(client, accounts):
    foreign = unknown_order(account="account_hedge")
    operator = user_with_role("limited_admin", "admin", accounts=["account_main"])
    client.force_login(operator)

    assert settle(client, "ORD_nope", outcome="not_placed").status_code == 404
    assert settle(client, foreign, outcome="not_placed").status_code == 404
    assert Order.objects.get(pk=foreign.pk).status == OrderStatus.UNKNOWN


def test_it_refuses_traders_and_viewers(client, accounts):
    order = unknown_order()
    for role in ("viewer", "trader"):
        client.force_login(user_with_role(f"a_{role}", role))
        assert settle(client, order, outcome="not_placed").status_code == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.UNKNOWN
