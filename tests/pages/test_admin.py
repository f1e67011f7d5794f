"""The Django admin: every page loads, the actions call the services (and say what came
of each order), the roles hold, and no secret ever reaches a page."""

import json
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from orders.models import Account, AuditEvent, Notification, Order, OrderStatus
from orders.services.audit import audit_record
from tests.conftest import user_with_role
from tests.helpers import make_order, submit

pytestmark = pytest.mark.django_db
ORDERS = "/admin/orders/order/"
ACCOUNTS = "/admin/orders/account/"
AUDIT = "/admin/orders/auditevent/"


@pytest.fixture
def root(client, admin_user):
    client.force_login(admin_user)
    return client


def staff(client, role: str, accounts=None):
    user = user_with_role(f"staff-{role}", role, accounts)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    return user


def act(client, url: str, action: str, pks) -> object:
    return client.post(url, {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]}, follow=True)


def offered(response) -> set[str]:
    """The actions of a change list (none: no action form at all)."""
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices} if form else set()


def shown(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_it_loads_the_list_and_detail_pages_of_every_model(root, accounts):
    order = make_order(created_at=timezone.now(), status=OrderStatus.FAILED)
    make_order(created_at=timezone.now(), status=OrderStatus.SUCCESS, retry_of=order)
    event = audit_record(action="pause", target="account_main", changes={"reason": "test"})
    note = Notification.objects.create(event="order_failed", text="t", line="l", group="g")

    pages = [
        "/admin/",
        ORDERS,
        f"{ORDERS}?status__exact=failed&account__id__exact=account_main&strategy_name=manual&symbol=BTC/USDT:USDT",
        f"{ORDERS}?created_at__year={order.created_at.year}",
        f"{ORDERS}?q={order.request_id[:6]}",
        f"{ORDERS}{order.pk}/change/",
        ACCOUNTS,
        f"{ACCOUNTS}account_main/change/",
        AUDIT,
        f"{AUDIT}?action=pause",
        f"{AUDIT}{event.pk}/change/",
        "/admin/orders/notification/",
        f"/admin/orders/notification/{note.pk}/change/",
        # django-q2's own admin (its queue page exists with the ORM broker only)
        "/admin/django_q/schedule/",
        "/admin/django_q/failure/",
        "/admin/django_q/success/",
    ]
    for page in pages:
        assert root.get(page).status_code == 200, page


def test_it_shows_orders_read_only_with_their_retries(root, accounts):
    order = make_order(created_at=timezone.now(), status=OrderStatus.FAILED, error_message="Insufficient balance")
    retry = make_order(created_at=timezone.now(), status=OrderStatus.QUEUED, retry_of=order)

    page = root.get(f"{ORDERS}{order.pk}/change/").content.decode()

    assert "Insufficient balance" in page and retry.request_id in page
    assert 'name="_save"' not in page and 'name="status"' not in page  # nothing to edit
    assert root.get(f"{ORDERS}add/").status_code == 403
    assert root.post(f"{ORDERS}{order.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Order.objects.count() == 2


def test_it_searches_ids_by_their_beginning(root, accounts):
    wanted = make_order(created_at=timezone.now(), request_id="ORD_SEARCH_ME")
    make_order(created_at=timezone.now(), request_id="ORD_OTHER")

    response = root.get(ORDERS, {"q": "ORD_SEARCH"})

    assert list(response.context["cl"].result_list) == [wanted]


def test_it_cancels_queued_orders_through_the_service_and_reports_each(root, accounts):
    queued = make_order(created_at=timezone.now(), status=OrderStatus.QUEUED)
    done = make_order(created_at=timezone.now(), status=OrderStatus.SUCCESS)

    response = act(root, ORDERS, "cancel_orders", [queued.pk, done.pk])

    messages = shown(response)
    assert f"Order {queued.request_id} cancelled." in messages
    assert any(done.request_id in m and "only queued orders" in m for m in messages)
    assert Order.objects.get(pk=queued.pk).status == OrderStatus.CANCELLED
    assert Order.objects.get(pk=done.pk).status == OrderStatus.SUCCESS
    assert AuditEvent.objects.filter(action="cancel", target=queued.request_id, username="root").exists()


def test_it_retries_failed_orders_as_new_linked_orders(root, accounts):
    failed = make_order(created_at=timezone.now(), status=OrderStatus.FAILED)

    first = act(root, ORDERS, "retry_orders", [failed.pk])
    again = act(root, ORDERS, "retry_orders", [failed.pk])

    retry = Order.objects.get(retry_of=failed)
    assert f"Order {failed.request_id} resubmitted as {retry.request_id}." in shown(first)
    assert retry.status == OrderStatus.QUEUED and retry.created_by.username == "root"
    assert any("already retried" in m for m in shown(again))
    assert Order.objects.filter(retry_of=failed).count() == 1


def test_it_refuses_an_action_over_too_many_orders_and_does_nothing(root, accounts, monkeypatch):
    monkeypatch.setattr("orders.admin.ACTION_LIMIT", 2)
    queued = [make_order(created_at=timezone.now(), status=OrderStatus.QUEUED) for _ in range(3)]

    response = act(root, ORDERS, "cancel_orders", [o.pk for o in queued])

    assert "Select at most 2 orders for one action; nothing was done." in shown(response)
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.QUEUED}


def test_it_pauses_and_resumes_accounts_through_the_service(root, accounts):
    paused = act(root, ACCOUNTS, "pause_accounts", ["account_main", "account_hedge"])
    account = Account.objects.get(pk="account_main")

    assert "Account account_main paused." in shown(paused)
    assert account.paused and account.pause_reason == "paused in the admin (root)"
    assert Account.objects.get(pk="account_hedge").paused
    assert AuditEvent.objects.filter(action="pause", target="account_main").count() == 1

    resumed = act(root, ACCOUNTS, "resume_accounts", ["account_main"])

    assert "Account account_main resumed." in shown(resumed)
    assert not Account.objects.get(pk="account_main").paused
    assert Account.objects.get(pk="account_hedge").paused


@pytest.mark.parametrize(
    "role, may_trade, may_operate", [("viewer", False, False), ("trader", True, False), ("admin", True, True)]
)
def test_it_offers_each_role_only_its_actions(client, accounts, role, may_trade, may_operate):
    staff(client, role)
    queued = make_order(created_at=timezone.now(), status=OrderStatus.QUEUED)

    order_actions = offered(client.get(ORDERS))
    account_actions = offered(client.get(ACCOUNTS))
    act(client, ORDERS, "cancel_orders", [queued.pk])
    act(client, ACCOUNTS, "pause_accounts", ["account_main"])

    assert ("cancel_orders" in order_actions) is may_trade
    assert ("pause_accounts" in account_actions) is may_operate
    assert (Order.objects.get(pk=queued.pk).status == OrderStatus.CANCELLED) is may_trade
    assert Account.objects.get(pk="account_main").paused is may_operate


def test_it_shows_a_staff_user_limited_to_some_accounts_only_those(client, accounts):
    staff(client, "trader", accounts=["account_hedge"])
    mine = make_order(created_at=timezone.now(), account="account_hedge")
    other = make_order(created_at=timezone.now(), account="account_main")

    orders = list(client.get(ORDERS).context["cl"].result_list)
    accounts_shown = [a.pk for a in client.get(ACCOUNTS).context["cl"].result_list]

    assert orders == [mine]
    assert accounts_shown == ["account_hedge"]
    assert client.get(f"{ORDERS}{other.pk}/change/").status_code == 302  # "does not exist" -> back to the list


def test_it_never_shows_a_secret_only_whether_it_is_set(root, accounts, monkeypatch):
    values = {"ADM_KEY": "key-VALUE-4f1c", "ADM_SECRET": "secret-VALUE-9d2e", "ADM_PASS": "pass-VALUE-77aa"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ADM_MISSING", raising=False)
    Account.objects.filter(pk="account_main").update(
        mode="demo", api_key_env="ADM_KEY", secret_env="ADM_SECRET", passphrase_env="ADM_PASS"
    )
    Account.objects.filter(pk="account_hedge").update(
        mode="live", api_key_env="ADM_KEY", secret_env="ADM_MISSING", passphrase_env="ADM_PASS"
    )

    pages = [
        root.get(ACCOUNTS).content.decode(),
        root.get(f"{ACCOUNTS}account_main/change/").content.decode(),
        root.get(f"{ACCOUNTS}account_hedge/change/").content.decode(),
        root.get(f"{ACCOUNTS}?q=account").content.decode(),
    ]

    for page in pages:
        for value in values.values():
            assert value not in page
    assert "<code>ADM_KEY</code>: set" in pages[1] and "<code>ADM_PASS</code>: set" in pages[1]
    assert "<code>ADM_MISSING</code>: missing" in pages[2]
    assert "missing: ADM_MISSING" in pages[0] and "all set" in pages[0]


def test_it_keeps_the_audit_trail_read_only(root, accounts):
    event = audit_record(action="pause", target="all", changes={"reason": "x"})

    assert root.get(f"{AUDIT}add/").status_code == 403
    assert root.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = root.get(f"{AUDIT}{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def jsonl(response) -> list[dict]:
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_it_exports_the_selected_or_the_filtered_audit_events_as_jsonl(root, accounts):
    AuditEvent.objects.all().delete()
    pause = audit_record(action="pause", target="account_main", changes={"reason": "drill"})
    audit_record(action="resume", target="account_main")
    later = audit_record(action="pause", target="all")
    AuditEvent.objects.filter(pk=later.pk).update(at=timezone.now() + timedelta(seconds=1))

    selected = root.post(AUDIT, {"action": "export_jsonl", ACTION_CHECKBOX_NAME: [str(pause.pk)]})
    filtered = root.get(f"{AUDIT}export/", {"action": "pause"})
    everything = root.get(f"{AUDIT}export/")

    assert jsonl(selected) == [
        {"at": pause.at.isoformat(), "user": "", "action": "pause", "source": "", "target": "account_main",
         "changes": {"reason": "drill"}}
    ]  # fmt: skip
    assert [(e["action"], e["target"]) for e in jsonl(filtered)] == [("pause", "account_main"), ("pause", "all")]
    assert len(jsonl(everything)) == 3
    assert f"{AUDIT}export/" in root.get(AUDIT).content.decode()


def test_it_refuses_the_audit_export_to_a_user_without_the_right(client, accounts, django_user_model):
    user = django_user_model.objects.create_user("plainstaff", password="pw-plainstaff-123", is_staff=True)
    client.force_login(user)

    assert client.get(f"{AUDIT}export/").status_code == 403


def test_it_shows_the_workers_changes_beside_the_peoples(root, accounts):
    from orders.services import drain

    order = submit()
    drain.drain_account(account_id="account_main")

    page = root.get("/admin/orders/orderevent/").content.decode()

    assert page.count(order.request_id) == 3  # created, claimed, succeeded
    assert "worker" in page and "processing" in page and "success" in page


def test_it_settles_an_unknown_order_from_the_admin(root, accounts):
    order = make_order(created_at=timezone.now(), status=OrderStatus.UNKNOWN, order_id=None)
    Order.objects.filter(pk=order.pk).update(sent=True, deadline_at=timezone.now() - timedelta(seconds=10))

    response = act(root, ORDERS, "settle_not_placed", [order.pk])

    assert f"Order {order.request_id} settled as not placed" in response.content.decode()
    order.refresh_from_db()
    assert (order.status, order.error_code) == (OrderStatus.FAILED, "settled_not_placed")
    assert AuditEvent.objects.filter(action="settle", target=order.request_id).exists()


def test_it_asks_for_the_exchange_order_id_before_settling_as_placed(root, accounts):
    order = make_order(created_at=timezone.now(), status=OrderStatus.UNKNOWN, order_id=None)

    response = act(root, ORDERS, "settle_placed", [order.pk])

    assert "give its exchange order id; nothing was done" in response.content.decode()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.UNKNOWN


def test_it_shows_a_limited_staff_user_only_the_audit_of_their_accounts(client, accounts):
    from orders.services.controls import pause

    mine = make_order(created_at=timezone.now(), account="account_hedge")
    other = make_order(created_at=timezone.now(), account="account_main")
    audit_record(action="cancel", target=mine.request_id, source="10.0.0.1")
    audit_record(action="cancel", target=other.request_id, source="10.0.0.2")
    pause(account_id="account_main", reason="drill", source="test")
    outsider = user_with_role("outsider", "admin")
    audit_record(action="token_created", user=outsider, target="outsider")
    user = staff(client, "trader", accounts=["account_hedge"])
    audit_record(action="token_created", user=user, target=user.username)

    page = client.get(AUDIT)
    shown = {(e.action, e.target) for e in page.context["cl"].result_list}
    names = {name for name, _ in page.context["cl"].filter_specs[1].lookup_choices}
    exported = client.get(f"{AUDIT}export/").getvalue().decode()

    assert shown == {("cancel", mine.request_id), ("token_created", user.username)}
    assert names == {user.username}
    assert other.request_id not in exported and "outsider" not in exported and mine.request_id in exported
