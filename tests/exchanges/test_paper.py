"""The paper venue (orders.exchanges.paper): OKX's placement rules on a simulated book."""

import time
from decimal import Decimal

import pytest

from orders.exchanges.base import AmbiguousError, Execution, FinalError, OrderTicket, RetryableError
from orders.exchanges.paper import PaperExchange
from orders.models import Account, PaperOrder

pytestmark = pytest.mark.django_db


def ticket(client_order_id: str, amount="0.01", order_type="market", price=None):
    return OrderTicket(client_order_id=client_order_id, symbol="BTC/USDT:USDT", side="buy", order_type=order_type,
                       amount=Decimal(amount), amount_unit="base", price=price, leverage=10, margin_mode="cross",
                       reduce_only=False)  # fmt: skip


@pytest.fixture
def venue():
    account = Account.objects.create(
        id="paper_t", mode="paper", options={"reference_prices": {"BTC/USDT:USDT": 65000}, "max_amount": 1}
    )
    return PaperExchange(account)


def later(seconds=5) -> int:
    return int((time.time() + seconds) * 1000)


def test_a_batch_gives_each_order_its_own_outcome_in_one_write(venue):
    venue.place_orders([ticket("resting", order_type="limit", price=Decimal("1"))], deadline_ms=later())
    PaperOrder.objects.filter(client_order_id="resting").update(state="open")

    results = venue.place_orders([ticket("ok-1"), ticket("resting"), ticket("too-big", amount="2"), ticket("ok-2")],
                                 deadline_ms=later())  # fmt: skip

    assert [type(result) for result in results] == [Execution, AmbiguousError, FinalError, Execution]
    assert (results[1].code, results[2].code) == ("51016", "paper_insufficient_funds")
    placed = PaperOrder.objects.filter(client_order_id__in=["ok-1", "ok-2"])
    assert placed.count() == 2 and len({row.started for row in placed}) == 1  # one request
    assert all(row.finished is not None for row in placed)
    assert not PaperOrder.objects.filter(client_order_id="too-big").exists()
    assert {results[0].order_id, results[3].order_id} == set(placed.values_list("exchange_order_id", flat=True))


def test_an_id_is_refused_only_while_its_order_rests_on_the_book(venue):
    venue.place_order(ticket("again"), deadline_ms=later())  # a market order: filled at once

    second = venue.place_order(ticket("again"), deadline_ms=later())  # OKX places it again

    assert PaperOrder.objects.filter(client_order_id="again").count() == 2
    assert second.state == "filled"


def test_nothing_is_placed_after_the_deadline(venue):
    with pytest.raises(RetryableError) as refused:
        venue.place_order(ticket("late"), deadline_ms=later(-1))

    assert refused.value.code == "50037"
    assert not PaperOrder.objects.exists()
