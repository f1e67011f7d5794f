"""Gzip old execution journal files; the daily django-q2 schedule runs the same service."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.services.archive import ArchiveError, archive_journals


class Command(BaseCommand):
    help = (
        "Gzip executions_YYYYMMDD.jsonl files whose day (in TIME_ZONE) is more than DAYS days ago into "
        "executions_YYYYMMDD.jsonl.gz, appending to an existing .gz. Safe while workers write the journal."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=None,
            help="Age in days (default ORDER_SCHEDULER_ARCHIVE_DAYS). 0 archives everything before today.",
        )

    def handle(self, *args, older_than, **options):
        days = settings.ORDER_SCHEDULER["ARCHIVE_DAYS"] if older_than is None else older_than
        try:
            report = archive_journals(older_than_days=days)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from None
        for name, moved in report.archived:
            self.stdout.write(f"archived {name} ({moved} bytes) into {name}.gz")
        if not report.archived:
            self.stdout.write(f"nothing to archive (no journal file older than {days} day(s))")
        for name, problem in report.problems.items():
            self.stderr.write(f"{name}: {problem}")
        if report.problems:
            raise CommandError(f"{len(report.problems)} journal file(s) could not be archived (left as they were)")
