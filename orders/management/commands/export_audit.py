import sys

from django.core.management.base import BaseCommand, CommandError

from orders.models import AuditEvent
from orders.selectors import QueryError, parse_time_bound
from orders.services.audit import audit_lines


class Command(BaseCommand):
    help = "Write the audit trail as JSONL (oldest first) to standard output or a file."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO 8601 date or datetime (inclusive, local time zone).")
        parser.add_argument("--until", help="ISO 8601 date or datetime (exclusive).")
        parser.add_argument("--action", help="Only this action, e.g. submit, cancel, pause, login_failed.")
        parser.add_argument("--user", help="Only this username.")
        parser.add_argument("--output", help="A file to write (default: standard output).")

    def handle(self, *args, since=None, until=None, action=None, user=None, output=None, **options):
        events = AuditEvent.objects.all()
        try:
            if since:
                events = events.filter(at__gte=parse_time_bound(since, name="--since"))
            if until:
                events = events.filter(at__lt=parse_time_bound(until, name="--until"))
        except QueryError as exc:
            raise CommandError(str(exc)) from None
        if action:
            events = events.filter(action=action)
        if user:
            events = events.filter(username=user)
        if output and output != "-":
            try:
                with open(output, "w", encoding="utf-8") as handle:
                    handle.writelines(audit_lines(events=events))
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror}") from None
        else:
            sys.stdout.writelines(audit_lines(events=events))
