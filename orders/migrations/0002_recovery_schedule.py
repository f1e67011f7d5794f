"""A django-q2 schedule that runs recovery every minute, for deployments that run a
bare `qcluster` without `manage.py serve` (whose supervisor runs it every few seconds)."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="order-scheduler-recovery",
        defaults={"func": "orders.tasks.recover", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="order-scheduler-recovery").delete()


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
