"""Load order history (older system's execution logs, our journal and exports) into the database."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orders.services.order_import import OrderImportError, import_orders


class Command(BaseCommand):
    help = (
        "Import JSONL order history (.jsonl or .jsonl.gz): the older system's executions_YYYYMMDD.jsonl, "
        "this service's journal and export_orders files. Idempotent by request_id; only finished orders "
        "(success, failed, cancelled, expired) are taken and none is ever executed. Unknown accounts are "
        "created disabled and out of config."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--chunk-size", type=int, default=1000, help="Orders inserted per transaction.")

    def handle(self, *args, files, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            report = import_orders(paths=[Path(f) for f in files], on_problem=self.stderr.write, chunk_size=chunk_size)
        except OrderImportError as exc:
            raise CommandError(str(exc)) from None
        if report.accounts_created:
            self.stdout.write(
                f"created {len(report.accounts_created)} unknown account(s) as disabled, out of config: "
                + ", ".join(sorted(report.accounts_created))
            )
        if report.ignored_fields:
            self.stdout.write(
                "fields ignored (not part of an order record): " + ", ".join(sorted(report.ignored_fields))
            )
        self.stdout.write(
            f"imported {report.imported}, skipped as existing {report.existing}, rejected {report.rejected}"
        )
        if report.rejected:
            raise CommandError(f"{report.rejected} line(s) rejected (listed above); the other lines were imported")
