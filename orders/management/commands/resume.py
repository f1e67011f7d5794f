from django.core.management.base import BaseCommand, CommandError

from orders.services.controls import ControlError, resume


class Command(BaseCommand):
    help = "Resume one account (--account) or all trading after a pause, and wake the drainers."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="The account to resume; all trading when omitted.")

    def handle(self, *args, account=None, **options):
        try:
            woken = resume(account_id=account, source="command:resume")
        except ControlError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"resumed {account or 'all trading'} ({len(woken)} account(s) woken)")
