from django.core.management.base import BaseCommand, CommandError

from orders.services.access import AccessError, first_admin_ensure


class Command(BaseCommand):
    help = "On first run, create a local admin user and an API token and print them once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        try:
            admin = first_admin_ensure(username=username, actor="command:ensure_admin")
        except AccessError as exc:
            raise CommandError(str(exc)) from None
        if admin is None:
            return
        self.stdout.write(
            "\nCreated the local admin user (shown only this once; keep it safe):\n"
            f"  username:  {admin.username}\n  password:  {admin.password}\n  API token: {admin.token}\n"
            f'  try: curl -H "Authorization: Token {admin.token}" http://HOST:PORT/api/order-scheduler/status\n'
        )
