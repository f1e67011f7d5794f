"""Fixtures shared by the service tests."""

import pytest

from orders.models import Account
from tests.fakes.okx import FakeOKX

KEY, SECRET, PASSPHRASE = "life-key", "life-secret", "life-pass"


@pytest.fixture
def okx_account(db, monkeypatch):
    with FakeOKX(accounts={KEY: (SECRET, PASSPHRASE)}, demo=True) as fake:
        for name, value in (("LIFE_KEY", KEY), ("LIFE_SECRET", SECRET), ("LIFE_PASS", PASSPHRASE)):
            monkeypatch.setenv(name, value)
        Account.objects.create(
            id="okx_life", mode="demo", api_key_env="LIFE_KEY", secret_env="LIFE_SECRET", passphrase_env="LIFE_PASS",
            base_url=fake.base_url, default_leverage=5, options={"timeout_ms": 2000},
        )  # fmt: skip
        yield fake
