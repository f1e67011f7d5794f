from django.core.management.base import BaseCommand, CommandError

from orders.services.accounts import AccountsFileError, sync_accounts


class Command(BaseCommand):
    help = "Sync accounts from the accounts file (ORDER_SCHEDULER_ACCOUNTS_FILE) into the database."

    def add_arguments(self, parser):
        parser.add_argument("--file", help="Another accounts file to read.")
        parser.add_argument("--strict", action="store_true", help="Exit non-zero when any account has a problem.")

    def handle(self, *args, file=None, strict=False, **options):
        try:
            report = sync_accounts(path=file, actor="command:sync_accounts")
        except AccountsFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"synced {len(report.synced)} account(s): {', '.join(report.synced) or '-'}")
        if report.retired:
            self.stdout.write(f"no longer in the file (take no new orders): {', '.join(report.retired)}")
        for account_id, problem in report.problems.items():
            self.stderr.write(f"account {account_id}: {problem}")
        if strict and report.problems:
            raise CommandError(f"{len(report.problems)} account(s) have problems")
