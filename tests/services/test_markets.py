"""Market data shared by the workers of every host: orders.services.markets."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from orders.exchanges.base import MarketInfo
from orders.models import Account, AccountMode, Instrument
from orders.services.markets import amount_problem, refresh_markets, venue_of


class Venue:
    """An exchange adapter that answers load_markets with the markets it is given."""

    def __init__(self, markets: list[MarketInfo]):
        self.markets = markets

    def load_markets(self, *, force: bool = False) -> list[MarketInfo]:
        return self.markets


def market(symbol: str, minimum: str) -> MarketInfo:
    return MarketInfo(symbol=symbol, min_amount=Decimal(minimum), amount_step=Decimal("0.001"), contract_size=None)


@pytest.fixture
def account(db):
    return Account.objects.create(id="okx_x", mode=AccountMode.DEMO, base_url="http://venue.test")


def rows(account) -> dict[str, Decimal]:
    return dict(Instrument.objects.filter(venue=venue_of(account)).values_list("symbol", "min_amount"))


def test_it_replaces_a_venues_markets_with_the_loaded_ones(account):
    refresh_markets(account=account, exchange=Venue([market("BTC/USDT", "0.001"), market("ETH/USDT", "0.01")]))

    refresh_markets(account=account, exchange=Venue([market("BTC/USDT", "0.002"), market("SOL/USDT", "0.1")]))

    assert rows(account) == {"BTC/USDT": Decimal("0.002"), "SOL/USDT": Decimal("0.1")}


@pytest.mark.django_db(transaction=True)
def test_it_survives_workers_of_several_accounts_refreshing_one_venue_at_once():
    # Accounts on the same OKX site load the same markets, often at the same moment (a
    # cluster starting): on PostgreSQL their transactions really overlap.
    accounts = [
        Account.objects.create(id=f"okx_{n}", mode=AccountMode.DEMO, base_url="http://venue.test") for n in range(6)
    ]
    markets = [market(f"C{n}/USDT", "0.001") for n in range(40)]
    errors = []
    start = threading.Barrier(len(accounts))

    def worker(account):
        try:
            for _ in range(5):
                start.wait(timeout=30)
                refresh_markets(account=account, exchange=Venue(markets))
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(a,)) for a in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert rows(accounts[0]) == {m.symbol: Decimal("0.001") for m in markets}


def test_it_checks_a_symbol_against_the_venue_in_one_statement(account, django_assert_num_queries):
    # One statement sees one state: a market load committing between two reads must not
    # make a listed symbol look unknown.
    with django_assert_num_queries(1):
        assert amount_problem(account=account, symbol="BTC/USDT", amount=Decimal("5"), unit="base") == {}
    refresh_markets(account=account, exchange=Venue([market("BTC/USDT", "0.001"), market("ETH/USDT", "0.01")]))

    with django_assert_num_queries(1):
        unknown = amount_problem(account=account, symbol="SOL/USDT", amount=Decimal("5"), unit="base")
    with django_assert_num_queries(1):
        known = amount_problem(account=account, symbol="ETH/USDT", amount=Decimal("5"), unit="base")
    small = amount_problem(account=account, symbol="ETH/USDT", amount=Decimal("0.001"), unit="base")

    assert unknown == {"symbol": ["SOL/USDT is not traded on this account's OKX site (www.okx.com)."]}
    assert known == {}
    assert small == {"amount": ["Below the market minimum of 0.01 ETH."]}
