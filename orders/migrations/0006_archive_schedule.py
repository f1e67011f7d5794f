"""A daily django-q2 schedule that gzips old execution journal files (archive_logs).

First run shortly after the coming local midnight (TIME_ZONE), then every day."""

from datetime import datetime, time, timedelta

from django.db import migrations
from django.utils import timezone

NAME = "order-scheduler-archive-logs"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    tomorrow = timezone.localdate() + timedelta(days=1)
    first_run = timezone.make_aware(datetime.combine(tomorrow, time(0, 15)))
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "orders.tasks.archive_logs",
            "schedule_type": "D",
            "repeats": -1,
            "next_run": first_run,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0005_controls_audit_limits")]
    operations = [migrations.RunPython(create, remove)]
