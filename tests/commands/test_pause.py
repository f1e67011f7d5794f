"""The pause command: it holds an account's orders until resumed, and names an unknown account."""

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, Order, OrderStatus
from orders.services import drain, recovery
from tests.helpers import submit


@pytest.mark.django_db
def test_it_holds_orders_of_a_paused_account_until_resumed(accounts):
    call_command("pause", "--account", "account_main", "--reason", "funding check")
    order = submit()

    assert drain.drain_account(account_id="account_main") == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.QUEUED
    assert "funding check" in Account.objects.get(pk="account_main").pause_reason
    assert recovery.recover() == []  # a paused account is not woken either

    call_command("resume", "--account", "account_main")
    drain.drain_account(account_id="account_main")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SUCCESS


@pytest.mark.django_db
def test_it_reports_an_unknown_account_in_one_line(accounts):
    with pytest.raises(CommandError, match="Unknown account 'nope'"):
        call_command("pause", "--account", "nope", "--reason", "x")
