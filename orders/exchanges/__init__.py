"""Exchange adapters behind one interface (orders.exchanges.base.Exchange).

One adapter per account and process, reused: the OKX client keeps its markets and
connection pool between orders.
"""

import threading

from orders.exchanges.base import Exchange
from orders.models import Account, AccountMode

_lock = threading.Lock()
_adapters: dict[str, tuple[tuple, Exchange]] = {}


def _signature(account: Account) -> tuple:
    # A changed account (re-synced with other settings) gets a fresh adapter.
    return (
        account.mode,
        account.hostname,
        account.base_url,
        account.api_key_env,
        account.secret_env,
        account.passphrase_env,
        repr(sorted((account.options or {}).items())),
    )


def get_exchange(account: Account) -> Exchange:
    signature = _signature(account)
    with _lock:
        cached = _adapters.get(account.id)
        if cached and cached[0] == signature:
            return cached[1]
        if account.mode == AccountMode.PAPER:
            from orders.exchanges.paper import PaperExchange

            adapter = PaperExchange(account)
        else:
            from orders.exchanges.okx import OkxExchange

            adapter = OkxExchange(account)
        _adapters[account.id] = (signature, adapter)
        return adapter


def reset_exchanges() -> None:
    """Forget every adapter (tests, and after an account sync)."""
    with _lock:
        _adapters.clear()
