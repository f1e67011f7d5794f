from django.core.management.base import BaseCommand, CommandError

from orders.services.access import ROLES, AccessError, user_create


class Command(BaseCommand):
    help = "Create a user with a role (viewer, trader, admin) and an API token; prints the token once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--accounts", default="", help="Comma-separated account ids the user is limited to.")
        scope.add_argument(
            "--all-accounts", action="store_true", help="Every account, including those added later (explicit right)."
        )

    def handle(self, *args, username, role, accounts, all_accounts, **options):
        account_ids = [a.strip() for a in accounts.split(",") if a.strip()]
        try:
            user, key = user_create(
                username=username,
                role=role,
                accounts=account_ids,
                all_accounts=all_accounts,
                actor="command:create_api_user",
            )
        except AccessError as exc:
            raise CommandError(str(exc)) from None
        scope = "all accounts" if all_accounts else ", ".join(account_ids)
        self.stdout.write(f"created {role} {user.username} ({scope})\nAPI token (shown once): {key}")
