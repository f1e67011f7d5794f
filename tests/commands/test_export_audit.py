"""The export_audit command: the audit trail as JSON lines, filtered."""

import json

import pytest
from django.core.management import CommandError, call_command

from orders.services.controls import pause
from tests.helpers import submit


@pytest.mark.django_db
def test_it_exports_the_audit_trail_as_jsonl_filtered(accounts, tmp_path):
    submit()
    pause(account_id="account_main", reason="export me")
    target = tmp_path / "audit.jsonl"

    call_command("export_audit", "--action", "pause", "--output", str(target))

    [line] = [json.loads(text) for text in target.read_text().splitlines()]
    assert (line["action"], line["target"], line["changes"]) == ("pause", "account_main", {"reason": "export me"})
    with pytest.raises(CommandError, match="--since"):
        call_command("export_audit", "--since", "yesterday-ish")
