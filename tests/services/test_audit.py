"""The audit trail (orders.services.audit): every state change, who made it and from where."""

import pytest
from django.core.management import call_command

from orders.models import AuditEvent
from orders.services.controls import pause, resume
from orders.services.submit import order_submit
from tests.helpers import ORDER


@pytest.mark.django_db
def test_it_records_state_changes_in_the_audit_trail(accounts):
    order = order_submit(items=[{**ORDER, "account_id": "account_main"}], source="test").orders[0]
    pause(account_id="account_main", reason="audit me")
    resume(account_id="account_main")
    call_command("create_api_user", "alice", "--role", "trader", "--accounts", "account_main")
    call_command("revoke_token", "alice")

    actions = list(AuditEvent.objects.order_by("id").values_list("action", "target"))
    assert ("submit", order.request_id) in actions
    assert ("pause", "account_main") in actions and ("resume", "account_main") in actions
    assert ("token_created", "alice") in actions and ("token_revoked", "alice") in actions
    assert AuditEvent.objects.filter(action="account_sync").exists()  # the accounts fixture synced
    assert AuditEvent.objects.get(action="submit").source == "test"
