from django.core.management.base import BaseCommand, CommandError

from orders.services.controls import ControlError, pause


class Command(BaseCommand):
    help = "Kill switch: pause one account (--account) or all trading. Nothing is sent until resumed."

    def add_arguments(self, parser):
        parser.add_argument("--account", help="The account to pause; all trading when omitted.")
        parser.add_argument("--reason", required=True)

    def handle(self, *args, account=None, reason, **options):
        try:
            pause(account_id=account, reason=reason, source="command:pause")
        except ControlError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"paused {account or 'all trading'}: {reason}")
