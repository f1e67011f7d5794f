"""Who may do what: roles (Django groups `viewer`, `trader`, `admin` with the `orders`
permissions view_order, trade, operate) and which accounts a user reaches.

Access fails closed: a user reaches the accounts granted to them (AccountGrant) and
nothing else. Reaching every account, present and future, is an explicit right: a
superuser, or the `orders.all_accounts` permission (`create_api_user --all-accounts`).
A user whose last grant is removed, or whose only account is deleted (grants cascade),
reaches nothing.

Every "may this user ..." rule that more than one caller needs lives here, once: the
API, the dashboard, the admin and the services ask these functions."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from rest_framework.authtoken.models import Token

from orders.models import Account, AccountGrant, Order
from orders.services.audit import audit_record
from orders.services.errors import Forbidden

# Role -> the `orders` permissions its group holds.
ROLE_PERMISSIONS = {
    "viewer": ["view_order", "view_account", "view_auditevent"],
    "trader": ["view_order", "view_account", "view_auditevent", "trade"],
    "admin": ["view_order", "view_account", "view_auditevent", "trade", "operate", "change_account"],
}
ROLES = tuple(ROLE_PERMISSIONS)


ALL_ACCOUNTS_PERMISSION = "orders.all_accounts"


class AccessError(Exception):
    pass


def ensure_roles() -> None:
    """Create (or repair) the role groups. Runs after every migrate (and test flush)."""
    from django.contrib.auth.models import Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))


# The user's role, whatever the account. Whether an account may trade now (enabled,
# configured, not paused) is another question: orders.models.tradable().
def user_can_view(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.view_order"))


def user_can_trade(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.trade"))


def user_can_operate(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.operate"))


def allowed_account_ids(user) -> set[str] | None:
    """The accounts the user may see and trade, or None for all of them (superusers and
    holders of the all-accounts right; `None` as the user means the system itself: a
    management command or a task). No grant means no account, never every account."""
    if user is None or getattr(user, "is_superuser", False):
        return None
    if not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_allowed_accounts", False)
    if cached is not False:
        return cached
    if user.has_perm(ALL_ACCOUNTS_PERMISSION):
        user._allowed_accounts = None
    else:
        user._allowed_accounts = set(AccountGrant.objects.filter(user=user).values_list("account_id", flat=True))
    return user._allowed_accounts


def may_control(user, account_id: str | None) -> bool:
    """May this user pause or resume `account_id`, or all trading when it is None?

    An account needs the operate right and that account; all trading needs an operator
    who reaches every account (a limited admin must not stop, or restart, the whole desk).
    `None` as the user is the system (a management command run on the host)."""
    if account_id is not None:
        return may_operate_account(user, account_id)
    return user is None or (user_can_operate(user) and allowed_account_ids(user) is None)


def check_control(user, account_id: str | None, *, verb: str) -> None:
    """Raise Forbidden unless may_control(user, account_id); `verb` (pause, resume) goes
    into the message."""
    if not may_control(user, account_id):
        what = f"account '{account_id}'" if account_id else "all trading"
        raise Forbidden(f"You may not {verb} {what}.", {"account": [f"Not among the accounts you operate ({what})."]})


def may_use_account(user, account_id: str) -> bool:
    allowed = allowed_account_ids(user)
    return allowed is None or account_id in allowed


def may_operate_account(user, account_id: str) -> bool:
    """May settle, pause or resume this account: the operate right and a grant for it.
    None is the system itself (a command, the worker)."""
    if user is None:
        return True
    return user_can_operate(user) and may_use_account(user, account_id)


def restrict(queryset: QuerySet, user, field: str = "account_id") -> QuerySet:
    """Only the rows of the accounts the user may see."""
    allowed = allowed_account_ids(user)
    return queryset if allowed is None else queryset.filter(**{f"{field}__in": allowed})


def user_create(*, username: str, role: str, accounts: list[str] | None = None, all_accounts: bool = False,
                password: str | None = None, actor: str = "") -> tuple:  # fmt: skip
    """Create a user with a role, either account grants or the all-accounts right (one
    of them: access is never implied), and an API token. Returns (user, token key)."""
    if role not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    accounts = list(dict.fromkeys(accounts or []))
    if all_accounts and accounts:
        raise AccessError("give either --accounts or --all-accounts, not both")
    if not all_accounts and not accounts:
        raise AccessError("give --accounts a,b (the accounts the user may use) or --all-accounts")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise AccessError(f"user {username!r} already exists")
    unknown = sorted(set(accounts) - set(Account.objects.filter(pk__in=accounts).values_list("pk", flat=True)))
    if unknown:
        raise AccessError(f"unknown account(s): {', '.join(unknown)}")
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password or secrets.token_urlsafe(16))
        if role == "admin":
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(Group.objects.get(name=role))
        if all_accounts:
            user.user_permissions.add(all_accounts_permission())
        AccountGrant.objects.bulk_create(AccountGrant(user=user, account_id=a) for a in accounts)
        token = Token.objects.create(user=user)
        audit_record(action="token_created", user=user, source=actor, target=username,
                     changes={"role": role, "accounts": "all" if all_accounts else accounts})  # fmt: skip
    return user, token.key


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    password: str
    token: str


def first_admin_ensure(*, username: str = "admin", actor: str = "") -> FirstAdmin | None:
    """On a fresh installation, a superuser (every account, every right) with a random
    password and an API token, for the person who installed it; None when a superuser
    exists already, so running it on every start changes nothing after the first."""
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    if User.objects.filter(username=username).exists():
        raise AccessError(
            f"user '{username}' exists but is not a superuser; pass --username NAME or run createsuperuser"
        )
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email="", password=password)
        token = Token.objects.create(user=user)
        audit_record(action="token_created", user=user, source=actor, target=username,
                     changes={"role": "superuser", "accounts": "all"})  # fmt: skip
    return FirstAdmin(username=username, password=password, token=token.key)


def all_accounts_permission():
    """The `orders.all_accounts` permission (created here if post_migrate has not yet)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(Order)
    return Permission.objects.get_or_create(
        content_type=content_type, codename="all_accounts", defaults={"name": "Can see and trade every account"}
    )[0]


def token_rotate(*, username: str, actor: str = "") -> str:
    """A new API token for the user (the old one stops working)."""
    user = _user(username)
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        key = Token.objects.create(user=user).key
        audit_record(action="token_created", user=user, source=actor, target=username)
    return key


def token_revoke(*, username: str, actor: str = "") -> bool:
    """Revoke the user's API token; True when there was one."""
    user = _user(username)
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        audit_record(
            action="token_revoked", user=user, source=actor, target=username, changes={"revoked": bool(deleted)}
        )
    return bool(deleted)


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise AccessError(f"no user {username!r}")
    return user
