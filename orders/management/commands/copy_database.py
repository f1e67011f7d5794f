from django.core.management.base import BaseCommand, CommandError

from orders.services.database_copy import CopyError, copy_database


class Command(BaseCommand):
    help = (
        "Copy all data from another database (e.g. the SQLite file) into the configured one "
        "(DATABASE_URL), which must be migrated and empty. Stop the service first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="source", required=True, metavar="URL",
            help="the source database, e.g. sqlite:////srv/order-scheduler/data/db.sqlite3",
        )  # fmt: skip
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows read and written at a time")

    def handle(self, *args, source, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        verbose = options["verbosity"] > 1
        try:
            report = copy_database(
                source_url=source, chunk_size=chunk_size, progress=self.stdout.write if verbose else lambda line: None
            )
        except CopyError as exc:
            raise CommandError(str(exc)) from None
        for table, rows in report.rows.items():
            self.stdout.write(f"{table}: {rows}")
        self.stdout.write(f"copied and verified {report.total} rows in {len(report.rows)} tables")
