from django.core.management.base import BaseCommand, CommandError

from orders.services.access import ROLES, AccessError, user_create


class Command(BaseCommand):
    help = "Create a user with a role (viewer, trader, admin) and an API token; prints the token once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--accounts", default="", help="Comma-separated account ids the user is limited to.")

    def handle(self, *args, username, role, accounts, **options):
        account_ids = [a.strip() for a in accounts.split(",") if a.strip()]
        try:
            user, key = user_create(username=username, role=role, accounts=account_ids, actor="command:create_api_user")
        except AccessError as exc:
            raise CommandError(str(exc)) from None
        scope = ", ".join(account_ids) if account_ids else "all accounts"
        self.stdout.write(f"created {role} {user.username} ({scope})\nAPI token (shown once): {key}")
