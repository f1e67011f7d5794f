import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "On first run, create a local admin user and an API token and print them once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        if User.objects.filter(username=username).exists():
            raise CommandError(
                f"user '{username}' exists but is not a superuser; pass --username NAME or run createsuperuser"
            )
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email="", password=password)
            token = Token.objects.create(user=user)
        self.stdout.write(
            "\nCreated the local admin user (shown only this once; keep it safe):\n"
            f"  username:  {username}\n  password:  {password}\n  API token: {token.key}\n"
            f'  try: curl -H "Authorization: Token {token.key}" http://HOST:PORT/api/order-scheduler/status\n'
        )
