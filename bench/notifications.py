"""What a notification costs on the order path, and what a burst costs the sender.

    python bench/notifications.py [--events 2000]

On a throwaway SQLite file with the production settings (WAL, IMMEDIATE): records
`--events` failed-order notifications one by one, as execution does (INSERT plus the
django-q2 enqueue on commit), and prints the time per event; then lets the sender turn
them into one summary message to the local Bot API fake and prints how long that took.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()

    from tests.fakes.telegram import FakeTelegram

    fake = FakeTelegram().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="scheduler_site.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        ORDER_SCHEDULER_LOG_DIR=str(tmp),
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_CHAT_ID="-1001",
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_GATHER_SECONDS="0",
        TELEGRAM_BURST_WINDOW="0",
        LOG_LEVEL="ERROR",
    )
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from orders.models import Notification, Order, OrderStatus
    from orders.services import notifications

    call_command("migrate", verbosity=0)
    times = []
    for n in range(args.events):
        order = Order(
            request_id=f"B{n}",
            client_order_id=f"sc{n}",
            account_id=f"account_{n % 4}",
            symbol="BTC/USDT:USDT",
            side="buy",
            order_type="market",
            amount=Decimal("0.001"),
            status=OrderStatus.FAILED,
            error_code=f"code_{n % 3}",
            error_message="Insufficient balance",
            finished_at=timezone.now(),
        )
        started = time.perf_counter()
        notifications.order_finished(order=order)
        times.append(time.perf_counter() - started)
    times.sort()
    ms = [t * 1000 for t in times]
    print(
        f"record {args.events} failed-order notifications (INSERT + enqueue): "
        f"p50 {statistics.median(ms):.2f} ms, p95 {ms[int(len(ms) * 0.95)]:.2f} ms, max {ms[-1]:.2f} ms"
    )

    started = time.perf_counter()
    delivered = 0
    while sent := notifications.send_pending():
        delivered += sent
    elapsed = time.perf_counter() - started
    print(
        f"sender: {delivered} pending notifications -> {len(fake.messages)} message(s) "
        f"of {max(len(m.text) for m in fake.messages)} chars in {elapsed * 1000:.0f} ms; "
        f"{Notification.objects.filter(sent_at__isnull=True).count()} left pending"
    )
    fake.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
