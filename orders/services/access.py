"""Who may do what: roles (Django groups `viewer`, `trader`, `admin` with the `orders`
permissions view_order, trade, operate) and per-user account grants. Superusers may do
everything; a user with account grants sees and trades only those accounts."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import QuerySet
from rest_framework.authtoken.models import Token

from orders.models import Account, AccountGrant
from orders.services.audit import audit_record

# Role -> the `orders` permissions its group holds.
ROLE_PERMISSIONS = {
    "viewer": ["view_order", "view_account", "view_auditevent"],
    "trader": ["view_order", "view_account", "view_auditevent", "trade"],
    "admin": ["view_order", "view_account", "view_auditevent", "trade", "operate", "change_account"],
}
ROLES = tuple(ROLE_PERMISSIONS)


class AccessError(Exception):
    pass


def ensure_roles() -> None:
    """Create (or repair) the role groups. Runs after every migrate (and test flush)."""
    from django.contrib.auth.models import Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))


def can_view(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.view_order"))


def can_trade(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.trade"))


def can_operate(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("orders.operate"))


def allowed_account_ids(user) -> set[str] | None:
    """The accounts the user may see and trade, or None for all of them."""
    if user is None or getattr(user, "is_superuser", False):
        return None
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_allowed_accounts", False)
    if cached is not False:
        return cached
    grants = set(AccountGrant.objects.filter(user=user).values_list("account_id", flat=True))
    user._allowed_accounts = grants or None
    return user._allowed_accounts


def may_use_account(user, account_id: str) -> bool:
    allowed = allowed_account_ids(user)
    return allowed is None or account_id in allowed


def may_operate_account(user, account_id: str) -> bool:
    """May settle, pause or resume this account: the operate right and a grant for it.
    None is the system itself (a command, the worker)."""
    if user is None:
        return True
    return can_operate(user) and may_use_account(user, account_id)


def restrict(queryset: QuerySet, user, field: str = "account_id") -> QuerySet:
    """Only the rows of the accounts the user may see."""
    allowed = allowed_account_ids(user)
    return queryset if allowed is None else queryset.filter(**{f"{field}__in": allowed})


def user_create(*, username: str, role: str, accounts: list[str] | None = None, password: str | None = None,
                actor: str = "") -> tuple:  # fmt: skip
    """Create a user with a role (and optional account grants) and an API token.
    Returns (user, token key)."""
    if role not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise AccessError(f"user {username!r} already exists")
    accounts = accounts or []
    unknown = sorted(set(accounts) - set(Account.objects.filter(pk__in=accounts).values_list("pk", flat=True)))
    if unknown:
        raise AccessError(f"unknown account(s): {', '.join(unknown)}")
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password or secrets.token_urlsafe(16))
        if role == "admin":
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(Group.objects.get(name=role))
        AccountGrant.objects.bulk_create(AccountGrant(user=user, account_id=a) for a in accounts)
        token = Token.objects.create(user=user)
        audit_record(action="token_created", user=user, source=actor, target=username,
                     changes={"role": role, "accounts": accounts})  # fmt: skip
    return user, token.key


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
            action="token_revoked", user=user, source=actor, target=username, changes={"had_token": bool(deleted)}
        )
    return bool(deleted)


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise AccessError(f"no user {username!r}")
    return user
