"""The resume command: one account or all trading, audited, drainers woken."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, AuditEvent, Control
from orders.services.controls import pause

pytestmark = pytest.mark.django_db


def resume(*args) -> str:
    out = StringIO()
    call_command("resume", *args, stdout=out)
    return out.getvalue()


def test_it_resumes_one_account_and_leaves_the_others_as_they_are(accounts):
    pause(account_id="account_main", reason="funding check")
    pause(account_id="account_poit_main", reason="key rotation")

    output = resume("--account", "account_main")

    assert output == "resumed account_main (1 account(s) woken)\n"
    assert not Account.objects.get(pk="account_main").paused
    assert Account.objects.get(pk="account_poit_main").paused
    event = AuditEvent.objects.get(action="resume")
    assert (event.target, event.source) == ("account_main", "command:resume")


def test_it_resumes_all_trading_without_an_account(accounts):
    pause(reason="exchange incident")

    output = resume()

    assert output.startswith("resumed all trading (")
    assert not Control.objects.get(pk=1).trading_paused
    assert AuditEvent.objects.get(action="resume").target == "all"


def test_it_reports_an_unknown_account_in_one_line_and_resumes_nothing(accounts):
    pause(account_id="account_main", reason="funding check")

    with pytest.raises(CommandError, match="Unknown account 'nope'"):
        resume("--account", "nope")

    assert Account.objects.get(pk="account_main").paused
    assert not AuditEvent.objects.filter(action="resume").exists()
