"""Test settings: the real settings module, fed a test environment.

Everything runs on a real SQLite file (data/pytest.sqlite3, the test database
data/test_pytest.sqlite3), so cluster subprocesses started by tests share it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
TEST_ENV = {
    "DATABASE_URL": os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'data' / 'pytest.sqlite3'}",
    "ORDER_SCHEDULER_ACCOUNTS_FILE": str(BASE_DIR / "tests" / "accounts.json"),
    "ORDER_SCHEDULER_LOG_DIR": str(BASE_DIR / "data" / "pytest_logs"),
    "ORDER_SCHEDULER_LEASE_SECONDS": "3",
    "ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS": "1",
    "ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS": "0.5",
    "ORDER_SCHEDULER_RECOVERY_INTERVAL": "0.5",
    "Q_POLL": "0.02",
    "TIME_ZONE": "UTC",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdef",
    "DEBUG": "0",
    "LOG_LEVEL": "WARNING",
    # The OKX and Telegram fakes listen on http://127.0.0.1.
    "ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL": "1",
}
# A queue of its own per test run: a Redis broker is shared by everything on the machine.
TEST_ENV["Q_CLUSTER_NAME"] = f"pytest{os.getpid()}"
for key, value in TEST_ENV.items():
    os.environ[key] = value
# The Redis broker only when a test run asks for it (the PostgreSQL + Redis CI leg).
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
else:
    os.environ.pop("REDIS_URL", None)

from scheduler_site.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation
