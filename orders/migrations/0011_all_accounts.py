"""Access fails closed from here on: a user without account grants reaches no account,
unless they are a superuser or hold the new `orders.all_accounts` permission.

Until now "no grant" meant "every account". So that nobody loses access on upgrade, every
existing non-superuser without a grant is given `all_accounts` explicitly (the README's
"Roles and access" says so; revoke it in the admin where it was never meant)."""

from django.db import migrations


def keep_existing_access(apps, schema_editor):
    User = apps.get_model("auth", "User")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    AccountGrant = apps.get_model("orders", "AccountGrant")

    content_type, _ = ContentType.objects.get_or_create(app_label="orders", model="order")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="all_accounts", defaults={"name": "Can see and trade every account"}
    )
    granted = AccountGrant.objects.values_list("user_id", flat=True)
    for user in User.objects.filter(is_superuser=False).exclude(pk__in=granted):
        user.user_permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_never_twice"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("trade", "Can submit, cancel and retry orders"),
                    ("operate", "Can pause and resume trading and sync accounts"),
                    ("all_accounts", "Can see and trade every account"),
                ],
            },
        ),
        migrations.RunPython(keep_existing_access, migrations.RunPython.noop),
    ]
