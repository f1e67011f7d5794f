"""Pre-trade limits per account (accounts file, "limits"): a submit past one is refused
with a 400 naming the limit. Amounts are compared in base currency, notionals in the
quote currency."""

from decimal import Decimal

from orders.models import Account, AmountUnit, Instrument, Order, OrderStatus
from orders.services.markets import venue_of


def _contract_size(account: Account, symbol: str) -> Decimal | None:
    return (
        Instrument.objects.filter(venue=venue_of(account), symbol=symbol)
        .values_list("contract_size", flat=True)
        .first()
    )


def _reference_price(account: Account, symbol: str) -> Decimal | None:
    """The market price an order's notional is judged by: the average fill price of the
    latest order the service filled for the symbol on this exchange venue (any account: the market is the
    same), else the account's configured reference price."""
    last_fill = (
        Order.objects.filter(
            account__in=Account.objects.filter(mode=account.mode, hostname=account.hostname, base_url=account.base_url),
            symbol=symbol,
            status=OrderStatus.SUCCESS,
            average_price__isnull=False,
        )
        .order_by("-created_at", "-id")  # the symbol's status index, newest first: no sort
        .values_list("average_price", flat=True)
        .first()
    )
    if last_fill is not None:
        return last_fill
    configured = ((account.options or {}).get("reference_prices") or {}).get(symbol)
    return Decimal(str(configured)) if configured is not None else None


def limit_problems(
    *,
    account: Account,
    symbol: str,
    amount: Decimal,
    unit: str,
    price: Decimal | None,
    leverage: int | None,
    side: str = "buy",
) -> dict[str, list[str]]:
    limits = account.limits or {}
    errors: dict[str, list[str]] = {}
    if leverage and "max_leverage" in limits and leverage > limits["max_leverage"]:
        errors["leverage"] = [
            f"Leverage {leverage} is above this account's limit of {limits['max_leverage']} (max_leverage)."
        ]
    if "max_amount" not in limits and "max_notional" not in limits:
        return errors
    base_amount = amount
    if unit == AmountUnit.CONTRACTS:
        size = _contract_size(account, symbol)
        if size is None:
            errors["amount_unit"] = [
                "This account has amount limits and the contract size of this market is not known yet: "
                "send the amount in base currency."
            ]
            return errors
        base_amount = amount * size
    base, quote = symbol.split("/")[0], symbol.split("/")[1].split(":")[0]
    if "max_amount" in limits and base_amount > Decimal(str(limits["max_amount"])):
        errors.setdefault("amount", []).append(
            f"{base_amount.normalize()} {base} is above this account's limit of {limits['max_amount']} {base} per order (max_amount)."
        )
    if "max_notional" in limits:
        # The market price matters for a market order, and for a sell limit (below).
        market = _reference_price(account, symbol) if price is None or side == "sell" else None
        reference = price or market
        if price is not None and side == "sell" and market is not None and market > price:
            # A sell limit below the market fills at the market: value it there, or a low
            # limit price would slip a large order under the limit.
            reference = market
        if reference is None:
            errors.setdefault("amount", []).append(
                f"This account limits the notional per order (max_notional) and no price is known for {symbol} yet: "
                "send a limit order."
            )
        elif base_amount * reference > Decimal(str(limits["max_notional"])):
            notional = (base_amount * reference).quantize(Decimal("0.01"))
            errors.setdefault("amount", []).append(
                f"Notional {notional} {quote} is above this account's limit of {limits['max_notional']} {quote} per order (max_notional)."
            )
    return errors
