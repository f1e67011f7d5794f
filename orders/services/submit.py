"""Order intake: the rules an order must pass before it is queued, idempotency, batches.

The input serializer has already checked each field's form (types, choices, ranges);
this module applies the rules that need the database, and writes all or nothing.
"""

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import Account, AmountUnit, Control, Installation, MarginMode, Order
from orders.services import transitions
from orders.services.access import may_use_account
from orders.services.audit import audit_record
from orders.services.drain import wake_idle_accounts
from orders.services.errors import Conflict, Forbidden, Invalid
from orders.services.limits import limit_problems
from orders.services.markets import amount_problem


@dataclass(frozen=True)
class SubmitResult:
    orders: list[Order]
    created: bool  # False when every order already existed (an idempotent replay)


def new_request_id() -> str:
    return f"ORD_{int(time.time() * 1000)}{secrets.token_hex(3)}"


_salt: str | None = None


def installation_salt() -> str:
    """This installation's salt (made by the migration; kept for the process)."""
    global _salt
    if _salt is None:
        _salt = Installation.objects.get_or_create(pk=1, defaults={"salt": secrets.token_hex(8)})[0].salt
    return _salt


def client_order_id_for(request_id: str) -> str:
    """OKX's clOrdId: letters and digits only, at most 32. A hash of the installation's
    salt and the request id keeps it unique and derivable whatever characters a client's
    request id has, and never equal to an id of another installation or of a database
    reset since (OKX would take a repeated id of a finished order as a new order)."""
    return "sc" + hashlib.blake2b(f"{installation_salt()}:{request_id}".encode(), digest_size=15).hexdigest()


def _payload_hash(item: dict) -> str:
    fields = {k: str(v) for k, v in sorted(item.items()) if k not in ("request_id",) and v is not None}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _account_errors(item: dict, accounts: dict[str, Account]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    account = accounts.get(item["account_id"])
    if account is None:
        errors["account_id"] = [f"Unknown account '{item['account_id']}'."]
        return errors
    if not account.in_config:
        errors["account_id"] = [f"Account '{account.id}' is no longer in the accounts file."]
    elif not account.enabled:
        errors["account_id"] = [f"Account '{account.id}' is disabled."]
    elif account.config_error:
        errors["account_id"] = [f"Account '{account.id}' cannot trade: {account.config_error}"]
    is_derivative = ":" in item["symbol"]
    if item.get("amount_unit") == AmountUnit.CONTRACTS and not is_derivative:
        errors["amount_unit"] = ["'contracts' applies to swaps and futures only; spot amounts are in base currency."]
    if not errors:
        errors.update(
            amount_problem(
                account=account, symbol=item["symbol"], amount=item["amount"], unit=item.get("amount_unit") or "base"
            )
        )
    if not errors:
        errors.update(
            limit_problems(
                account=account,
                symbol=item["symbol"],
                amount=item["amount"],
                unit=item.get("amount_unit") or AmountUnit.BASE,
                price=item.get("price"),
                leverage=item.get("leverage") or account.default_leverage,
                side=item["side"],
            )
        )
    return errors


def _build(item: dict, account: Account, *, user, idempotency_key: str | None, now) -> Order:
    request_id = item.get("request_id") or new_request_id()
    is_derivative = ":" in item["symbol"]
    # Nothing executes long after it was asked for: a default maximum age applies.
    expires_in = item.get("expires_in") or settings.ORDER_SCHEDULER["DEFAULT_EXPIRES_IN"]
    return Order(
        request_id=request_id,
        client_order_id=client_order_id_for(request_id),
        idempotency_key=idempotency_key,
        payload_hash=_payload_hash(item),
        account=account,
        symbol=item["symbol"],
        side=item["side"],
        order_type=item["order_type"],
        amount=Decimal(item["amount"]),
        amount_unit=item.get("amount_unit") or AmountUnit.BASE,
        price=item.get("price"),
        leverage=item.get("leverage") or account.default_leverage,
        margin_mode=(item.get("margin_mode") or account.margin_mode) if is_derivative else MarginMode.CASH,
        reduce_only=bool(item.get("reduce_only")),
        strategy_name=item.get("strategy_name") or "manual",
        priority=item.get("priority") or 0,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def _known(items: list[dict]) -> dict[str, Order]:
    """The orders already stored under the items' request ids, in one query."""
    wanted = {item["request_id"] for item in items if item.get("request_id")}
    return Order.objects.in_bulk(wanted, field_name="request_id") if wanted else {}


def _replay(items: list[dict], keys: list[str | None], known: dict[str, Order]) -> list[Order] | None:
    """The existing orders when this exact submission was made before, else None.
    The same request id or idempotency key with a different order is a conflict.
    `known`: _known(items)."""
    found = []
    for item, key in zip(items, keys, strict=True):
        request_id = item.get("request_id")
        existing = known.get(request_id) if request_id else None
        by_key = existing is None and key is not None
        if by_key:
            existing = Order.objects.filter(idempotency_key=key).first()
        if existing is None:
            found.append(None)
            continue
        # A key already used with another request_id is a different order too.
        if existing.payload_hash != _payload_hash(item) or (request_id and existing.request_id != request_id):
            label = "Idempotency-Key" if by_key else f"request_id '{existing.request_id}'"
            raise Conflict(
                "Conflict with an earlier order",
                {"request_id": [f"The {label} was already used for a different order."]},
            )
        found.append(existing)
    if all(found):
        return found
    if any(found):
        raise Conflict(
            "Conflict with an earlier order",
            {"request_id": ["Part of this batch was submitted before; resubmit it exactly or with new ids."]},
        )
    return None


def order_submit(
    *,
    items: list[dict],
    user=None,
    idempotency_key: str | None = None,
    batch: bool = False,
    retry_of: Order | None = None,
    source: str = "",
) -> SubmitResult:
    """Queue one order or a batch, all or nothing, and wake the accounts' drainers.

    `items` are validated field values (see orders.api.serializers.OrderSubmitSerializer).
    Resubmitting the same request_id or Idempotency-Key returns the existing orders.
    `retry_of` links the new order to the failed or expired one it retries; `source`
    (the client address or command) goes to the audit trail.

    Raises Invalid (a rule the order breaks, per field), Forbidden (an account the user
    may not trade on) or Conflict (an id used for another order, a paused account when
    paused submits are refused); nothing is written then.
    """
    keys = _idempotency_keys(len(items), user=user, idempotency_key=idempotency_key, batch=batch)
    _refuse_repeated_ids(items, batch)
    _refuse_foreign_accounts(items, user, batch)
    known = _known(items)
    items, keys = _outside_foreign_ids(items, keys, user, known)
    previous = _replay(items, keys, known)
    if previous is not None:
        return SubmitResult(orders=previous, created=False)

    accounts = Account.objects.in_bulk({item["account_id"] for item in items})
    errors = [_account_errors(item, accounts) for item in items]
    if any(errors):
        raise Invalid("Invalid order", errors if batch else errors[0])
    _refuse_if_paused(items, accounts)

    now = timezone.now()
    orders = [
        _build(item, accounts[item["account_id"]], user=user, idempotency_key=key, now=now)
        for item, key in zip(items, keys, strict=True)
    ]
    for order in orders:
        order.retry_of = retry_of
    try:
        _queue(orders, user=user, retry_of=retry_of, source=source)
    except IntegrityError:
        # A concurrent identical submission won the race: answer as a replay.
        previous = _replay(items, keys, _known(items))
        if previous is None:
            raise
        return SubmitResult(orders=previous, created=False)
    return SubmitResult(orders=orders, created=True)


def _idempotency_keys(count: int, *, user, idempotency_key: str | None, batch: bool) -> list[str | None]:
    """Each item's stored key: the header's, scoped to the user (two users' keys never
    meet), with the item's position for a batch."""
    if not idempotency_key:
        return [None] * count
    owner = getattr(user, "pk", None) or "anon"
    base = f"{owner}:{idempotency_key}"
    return [f"{base}#{i}" if batch else base for i in range(count)]


def _refuse_repeated_ids(items: list[dict], batch: bool) -> None:
    ids = [item.get("request_id") for item in items if item.get("request_id")]
    if len(ids) != len(set(ids)):
        repeated = {"request_id": ["Repeated within this batch."]}
        raise Invalid(
            "Invalid order", _per_item(items, batch, lambda it: ids.count(it.get("request_id")) > 1, repeated)
        )


def _refuse_foreign_accounts(items: list[dict], user, batch: bool) -> None:
    """The account check of a submit: every item's account must be one the user reaches."""
    forbidden = [item["account_id"] for item in items if not may_use_account(user, item["account_id"])]
    if forbidden:
        message = {"account_id": [f"You may not trade on account '{forbidden[0]}'."]}
        raise Forbidden("Forbidden", _per_item(items, batch, lambda it: it["account_id"] in forbidden, message))


def _queue(orders: list[Order], *, user, retry_of: Order | None, source: str) -> None:
    """Insert the orders with their events, wake their drainers and audit it, in one
    transaction (a duplicate id raises IntegrityError and leaves nothing)."""
    with transaction.atomic():
        for order in orders:
            order.save(force_insert=True)
        transitions.order_created(orders, actor=transitions.person(user))
        wake_idle_accounts(order.account_id for order in orders)
        audit_record(
            action="submit",
            user=user,
            source=source,
            target=orders[0].request_id if len(orders) == 1 else f"batch of {len(orders)}",
            changes={
                "request_ids": [o.request_id for o in orders],
                "retry_of": getattr(retry_of, "request_id", None),
            },
        )


def _outside_foreign_ids(
    items: list[dict], keys: list[str | None], user, known: dict[str, Order]
) -> tuple[list[dict], list[str | None]]:
    """A client's request_id that already names an order on an account this user may not
    use must neither reveal that order (a 409 would) nor block the client. Such an item
    gets a server-issued request_id (returned in the answer), and the client's id becomes
    its idempotency key, scoped to the user (unless an Idempotency-Key header gave one),
    so sending the same order again finds it again instead of placing it twice."""
    foreign = {rid for rid, order in known.items() if not may_use_account(user, order.account_id)}
    if not foreign:
        return items, keys
    owner = getattr(user, "pk", None) or "anon"
    items, keys = list(items), list(keys)
    for index, item in enumerate(items):
        if item.get("request_id") in foreign:
            if keys[index] is None:
                keys[index] = f"{owner}:request_id:{item['request_id']}"
            items[index] = {**item, "request_id": None}
    return items, keys


def _refuse_if_paused(items: list[dict], accounts: dict[str, Account]) -> None:
    """With ORDER_SCHEDULER_PAUSED_SUBMITS=refuse, a paused account or desk takes no order
    (with `hold`, the default, orders are accepted and stay queued until resumed)."""
    if settings.ORDER_SCHEDULER["PAUSED_SUBMITS"] != "refuse":
        return
    control = Control.objects.filter(pk=1, trading_paused=True).first()
    if control is not None:
        raise Conflict("Trading is paused", {"account_id": [f"All trading is paused: {control.reason}"]})
    for item in items:
        account = accounts[item["account_id"]]
        if account.paused:
            raise Conflict(
                "Trading is paused", {"account_id": [f"Account '{account.id}' is paused: {account.pause_reason}"]}
            )


def _per_item(items, batch, predicate, error):
    errors = [error if predicate(item) else {} for item in items]
    return errors if batch else errors[0]
