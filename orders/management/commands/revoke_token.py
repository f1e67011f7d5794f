from django.core.management.base import BaseCommand, CommandError

from orders.services.access import AccessError, token_revoke, token_rotate


class Command(BaseCommand):
    help = "Revoke a user's API token (--rotate: and print a new one)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--rotate", action="store_true", help="Issue a new token in place of the old one.")

    def handle(self, *args, username, rotate, **options):
        try:
            if rotate:
                key = token_rotate(username=username, actor="command:revoke_token")
                self.stdout.write(f"rotated the API token of {username}\nnew API token (shown once): {key}")
                return
            had = token_revoke(username=username, actor="command:revoke_token")
        except AccessError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"revoked the API token of {username}" if had else f"{username} had no API token")
