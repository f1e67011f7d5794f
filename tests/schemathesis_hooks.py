"""schemathesis hooks for tests/api/test_schema.py (loaded through SCHEMATHESIS_HOOKS).

The schema says what an account id looks like; which accounts exist is configuration,
not schema. So a well-formed account id that schemathesis makes up is swapped for one of
the test's accounts (named in SCHEMATHESIS_ACCOUNTS); a malformed one is left as it is,
for the API to refuse."""

import os
import re

import schemathesis

ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ACCOUNTS = os.environ.get("SCHEMATHESIS_ACCOUNTS", "account_main").split(",")


def _real_account(item):
    if isinstance(item, dict):
        for key in ("account_id", "account"):
            value = item.get(key)
            if isinstance(value, str) and ACCOUNT_ID_RE.match(value):
                item[key] = ACCOUNTS[len(value) % len(ACCOUNTS)]
    return item


@schemathesis.hook
def map_case(context, case):
    """Every phase (the coverage phase runs no body hooks, only case hooks)."""
    body = getattr(case, "body", None)
    if isinstance(body, list):
        case.body = [_real_account(item) for item in body]
    elif isinstance(body, dict):
        case.body = _real_account(body)
    return case
