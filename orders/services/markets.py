"""Market data: refreshed by the worker that trades an account, read by submit."""

from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Subquery

from orders.exchanges.base import AmbiguousError, Exchange, RetryableError
from orders.models import Account, AccountMode, AmountUnit, Instrument


def venue_of(account: Account) -> str:
    """Markets differ between live and demo and between OKX sites."""
    return f"okx:{account.mode}:{account.base_url or account.hostname}"


def refresh_markets(*, account: Account, exchange: Exchange) -> None:
    """Reload the account's markets when due and remember them for submit checks."""
    try:
        markets = exchange.load_markets()
    except AmbiguousError as exc:
        # Loading markets places nothing: an unclear answer only means "try again".
        raise RetryableError(f"Loading markets failed: {exc.message}", code=exc.code) from None
    if not markets:
        return
    venue = venue_of(account)
    # Workers of other accounts on the same site may be writing the same rows right now
    # (on PostgreSQL their transactions overlap): upsert in one order, then drop the
    # symbols the venue no longer lists, instead of delete-then-insert.
    with transaction.atomic():
        Instrument.objects.bulk_create(
            [
                Instrument(
                    venue=venue,
                    symbol=m.symbol,
                    min_amount=m.min_amount,
                    amount_step=m.amount_step,
                    contract_size=m.contract_size,
                )
                for m in sorted(markets, key=lambda m: m.symbol)
            ],
            update_conflicts=True,
            unique_fields=["venue", "symbol"],
            update_fields=["min_amount", "amount_step", "contract_size", "updated_at"],
        )
        Instrument.objects.filter(venue=venue).exclude(symbol__in=[m.symbol for m in markets]).delete()


def amount_problem(*, account: Account, symbol: str, amount: Decimal, unit: str) -> dict[str, list[str]]:
    """Errors for a symbol or amount the venue is known to refuse; empty when fine or
    when the venue's markets are not known yet (the worker then checks)."""
    if account.mode == AccountMode.PAPER:
        return {}
    venue = venue_of(account)
    # The symbol's row and any row of the venue, in one statement: with two, a first
    # market load committing in between made a listed symbol look unknown.
    any_row = Instrument.objects.filter(venue=venue).values("pk")[:1]
    rows = list(Instrument.objects.filter(venue=venue).filter(Q(symbol=symbol) | Q(pk=Subquery(any_row))))
    if not rows:
        return {}
    instrument = next((row for row in rows if row.symbol == symbol), None)
    if instrument is None:
        return {"symbol": [f"{symbol} is not traded on this account's OKX site ({account.hostname})."]}
    if instrument.min_amount is None:
        return {}
    base = symbol.split("/")[0]
    minimum = instrument.min_amount
    if unit == AmountUnit.CONTRACTS and instrument.contract_size:
        minimum_contracts = (minimum / instrument.contract_size).normalize()
        if amount < minimum_contracts:
            return {"amount": [f"Below the market minimum of {minimum_contracts} contracts."]}
        return {}
    if amount < minimum:
        contracts = (
            f" ({(minimum / instrument.contract_size).normalize()} contracts)" if instrument.contract_size else ""
        )
        return {"amount": [f"Below the market minimum of {minimum.normalize()} {base}{contracts}."]}
    return {}
