"""What the placement deadline itself costs a dispatch, in-process on a fresh SQLite file.

A drainer claims a queued order right before its request leaves. With the deadline that
claim also reads the exchange's clock, writes deadline_at/sent/attempts and checks in
the same UPDATE that the lease outlives the deadline plus the clock margin (the never
twice rule); without it, the claim is the bare status change with its event. Both are
timed alternately, one order at a time, and the medians printed with their difference.

    .venv/bin/python bench/deadline.py [--orders 400]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400, help="claims of each kind")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-deadline-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["ORDER_SCHEDULER_LOG_DIR"] = str(workdir / "logs")
    os.environ["ORDER_SCHEDULER_ACCOUNTS_FILE"] = str(workdir / "no-accounts.json")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bench_settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db.models import Exists, Q
    from django.db.models.functions import Now

    from orders.exchanges import get_exchange
    from orders.models import Account, Order, OrderStatus
    from orders.services import reconcile, transitions
    from orders.services.lease import Lease, held_for
    from orders.services.submit import order_submit

    call_command("migrate", verbosity=0)
    account = Account.objects.create(id="bench", mode="paper", options={"reference_prices": {"BTC/USDT:USDT": 65000}})
    exchange = get_exchange(account)
    lease = Lease(account_id=account.pk, owner="bench")
    assert lease.acquire()
    budget = settings.ORDER_SCHEDULER["PLACE_DEADLINE_SECONDS"]
    margin = settings.ORDER_SCHEDULER["CLOCK_MARGIN_SECONDS"]
    not_expired = Q(expires_at__isnull=True) | Q(expires_at__gte=Now())
    item = {"account_id": account.pk, "symbol": "BTC/USDT:USDT", "side": "buy", "order_type": "market",
            "amount": Decimal("0.001"), "leverage": 10, "strategy_name": "bench"}  # fmt: skip

    def plain(order):
        return transitions.claim([order], actor=transitions.WORKER, extra=not_expired)

    def with_deadline(order):
        deadline_at = reconcile.deadline_from_ms(exchange.exchange_time_ms() + int(budget * 1000))
        holds = Account.objects.filter(pk=account.pk).filter(held_for(budget + margin, owner=lease.owner))
        return transitions.claim(
            [order], actor=transitions.WORKER, extra=not_expired & Q(Exists(holds)),
            deadline_at=deadline_at, sent=True, attempts=1,
        )  # fmt: skip

    timings = {"plain": [], "deadline": []}
    for n in range(args.orders * 2 + 40):
        name, claim = ("plain", plain) if n % 2 else ("deadline", with_deadline)
        [order] = order_submit(items=[dict(item)]).orders
        started = time.perf_counter()
        assert claim(order), "the claim took nothing"
        elapsed = (time.perf_counter() - started) * 1000
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.SUCCESS)
        if n >= 40:  # warm-up
            timings[name].append(elapsed)

    plain_ms, deadline_ms = statistics.median(timings["plain"]), statistics.median(timings["deadline"])
    print(f"claim of one queued order right before its request, {args.orders} of each, alternating (medians):")
    print(f"  status change + event only:                          {plain_ms:6.3f} ms")
    print(f"  + exchange clock, deadline_at/sent, lease outlives it: {deadline_ms:6.3f} ms")
    print(f"  the deadline adds {deadline_ms - plain_ms:+.3f} ms to a dispatch")


if __name__ == "__main__":
    main()
