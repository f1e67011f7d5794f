"""OKX's rate budget for placements, per account.

OKX publishes (v5, per sub-account / API key): Place order 60 requests per 2 s per
instrument; Place multiple orders 300 orders per 2 s per instrument (a one-order batch
counts as Place order); and 1000 new and amended orders per 2 s per sub-account (50061).
The lease makes a drainer the only writer of its account, so the budget is held where it
sends: in its process, per account, over a sliding window. A drainer that takes an
account over in another process starts with an empty record (OKX answers a rare excess
with 50011/50061, which placed nothing and is sent again after a back-off).

Limits come from settings (ORDER_SCHEDULER_RATE_*) and an account's
`options.rate_limits` (VIP tiers have higher ones): {"place_per_instrument": 60,
"batch_orders_per_instrument": 300, "orders_per_account": 1000, "window_seconds": 2}.
"""

import threading
import time
from collections import Counter, defaultdict, deque

from django.conf import settings

from orders.models import Account

RATE_LIMIT_KEYS = ("place_per_instrument", "batch_orders_per_instrument", "orders_per_account", "window_seconds")


def limits_for(account: Account) -> dict:
    configured = settings.ORDER_SCHEDULER["RATE_LIMITS"]
    own = (account.options or {}).get("rate_limits") or {}
    return {key: float(own.get(key, configured[key])) for key in RATE_LIMIT_KEYS}


class Budget:
    """The placements of one account in the last window, by what they count against."""

    def __init__(self, limits: dict):
        self.limits = limits
        self._sent: dict[tuple, deque] = defaultdict(deque)  # key -> (time, count)

    def _used(self, key: tuple, now: float) -> int:
        window = self._sent[key]
        while window and window[0][0] <= now - self.limits["window_seconds"]:
            window.popleft()
        return sum(count for _, count in window)

    def _keys(self, symbols: list[str]) -> dict[tuple, tuple[int, float]]:
        """What a request for these orders counts against: key -> (orders, limit)."""
        kind = "batch_orders_per_instrument" if len(symbols) > 1 else "place_per_instrument"
        keys = {(kind, symbol): (count, self.limits[kind]) for symbol, count in Counter(symbols).items()}
        keys[("orders_per_account",)] = (len(symbols), self.limits["orders_per_account"])
        return keys

    def delay(self, symbols: list[str], *, now: float | None = None) -> float:
        """Seconds to wait before a request placing these orders fits the budget."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key, (count, limit) in self._keys(symbols).items():
            window = self._sent[key]
            used = self._used(key, now)
            # Drop the oldest sends until this one fits; it may go when the last of
            # those leaves the window.
            for sent_at, sent in window:
                if used + count <= limit:
                    break
                used -= sent
                wait = max(wait, sent_at + self.limits["window_seconds"] - now)
        return wait

    def spend(self, symbols: list[str], *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key, (count, _) in self._keys(symbols).items():
            self._sent[key].append((now, count))


_lock = threading.Lock()
_budgets: dict[str, tuple[dict, Budget]] = {}


def budget_for(account: Account) -> Budget:
    limits = limits_for(account)
    with _lock:
        known = _budgets.get(account.pk)
        if known is None or known[0] != limits:
            known = (limits, Budget(limits))
            _budgets[account.pk] = known
        return known[1]
