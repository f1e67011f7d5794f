"""Copying the whole service's data from one database into another, e.g. from the
embedded SQLite file into PostgreSQL when a desk outgrows one machine.

The target is the configured database (DATABASE_URL), migrated and empty; the source is
any database URL at the same migration state. Every table is read in primary-key order
in chunks and written with its original values (ids, timestamps, password hashes,
tokens), all in one transaction on the target: either everything arrives, with the row
count of every table checked against the source, or nothing does.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dj_database_url
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import load_backend
from django_q.models import OrmQ, Schedule

from orders.models import Installation

SOURCE_ALIAS = "copy_source"
# Rows `migrate` itself writes into a new database (content types, permissions, the role
# groups, the schedules, the installation's salt): replaced by the source's, whose ids the
# other tables refer to (and whose salt its orders' client order ids were made with).
# Deleted in reverse order: group permissions, groups, permissions, content types.
MIGRATION_MADE = (ContentType, Permission, Group, Group.permissions.through, Schedule, Installation)
# Pending wake-up calls of the ORM broker: not data. Recovery wakes every account that
# has work once the service runs on the target.
SKIPPED = (OrmQ,)


class CopyError(Exception):
    """The copy is refused or failed; nothing was written to the target."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied (and verified)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def copy_database(
    *, source_url: str, chunk_size: int = 2000, progress: Callable[[str], None] = lambda line: None
) -> CopyReport:
    """Copy every table of the database at `source_url` into the default database.

    Refuses (CopyError, nothing written) when the source is missing or is the target,
    when the two are not at the same migration state, or when the target holds any data
    beyond what `migrate` wrote. Row counts are compared table by table before commit.
    """
    source = _connect_source(source_url)
    target = connections[DEFAULT_DB_ALIAS]
    try:
        _check_migrations(source, target)
        models = _models()
        _check_empty(models)
        report = CopyReport()
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            for model in reversed(MIGRATION_MADE):  # permissions before their content types
                model.objects.using(DEFAULT_DB_ALIAS).all().delete()
            # One read transaction on the source: every table from the same snapshot.
            with source.cursor() as cursor:
                cursor.execute("BEGIN" if source.vendor == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ")
            for model in models:
                report.rows[model._meta.db_table] = _copy_table(model, source, target, chunk_size, progress)
            with target.cursor() as cursor:
                for statement in target.ops.sequence_reset_sql(no_style(), models):
                    cursor.execute(statement)
            _verify(models, source, target, report)
        ContentType.objects.clear_cache()  # ids may differ from what this process cached
        return report
    finally:
        source.close()


def _connect_source(url: str):
    """A connection to the source, kept out of django.db.connections: nothing else in
    the process can use it by accident."""
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:  # dj_database_url raises several types for bad URLs
        raise CopyError(f"--from is not a valid database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3" and not Path(config["NAME"]).is_file():
        raise CopyError(f"no SQLite file at {config['NAME']}")
    target = connections.settings[DEFAULT_DB_ALIAS]
    # By the backend's kind: the target may run a subclass of Django's (SQLite's does).
    same_kind = config["ENGINE"].rsplit(".", 1)[-1] == target["ENGINE"].rsplit(".", 1)[-1]
    if same_kind and all(config.get(key) == target.get(key) for key in ("NAME", "HOST", "PORT")):
        raise CopyError("the source is the target database (DATABASE_URL)")
    config = connections.configure_settings({DEFAULT_DB_ALIAS: config})[DEFAULT_DB_ALIAS]
    return load_backend(config["ENGINE"]).DatabaseWrapper(config, alias=SOURCE_ALIAS)


def _check_migrations(source, target) -> None:
    executor = MigrationExecutor(target)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CopyError("the target database is not fully migrated: run `python manage.py migrate` on it first")
    try:
        with source.cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            in_source = set(cursor.fetchall())
    except Exception as exc:  # not a database of this service, unreachable, ...
        raise CopyError(f"cannot read the source database's migrations: {exc}") from None
    in_target = set(MigrationRecorder(target).applied_migrations())
    if in_source != in_target:
        raise CopyError(
            "the source database is at another migration state than the target"
            f"{_listed('; the source lacks', in_target - in_source)}{_listed('; only the source has', in_source - in_target)}"
            ": migrate both with this version of the code first"
        )


def _listed(label: str, migrations: set) -> str:
    if not migrations:
        return ""
    names = sorted(f"{app}.{name}" for app, name in migrations)
    return f"{label} {', '.join(names[:5])}{f' and {len(names) - 5} more' if len(names) > 5 else ''}"


def _models() -> list:
    """Every table Django manages, many-to-many tables included, parents first."""
    models = [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and not model._meta.swapped and model not in SKIPPED
    ]
    ordered, seen = [], set()

    def visit(model):
        if model in seen:
            return
        seen.add(model)
        for field_ in model._meta.concrete_fields:
            related = field_.related_model
            if field_.is_relation and related is not None and related is not model and related in models:
                visit(related)
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered


def _check_empty(models) -> None:
    for model in models:
        if model in MIGRATION_MADE:
            continue
        if model.objects.using(DEFAULT_DB_ALIAS).exists():
            count = model.objects.using(DEFAULT_DB_ALIAS).count()
            raise CopyError(
                f"the target database is not empty ({model._meta.db_table} has {count} rows): "
                "copy only into a freshly migrated database"
            )


def _copy_table(model, source, target, chunk_size: int, progress) -> int:
    fields = model._meta.concrete_fields
    quote = target.ops.quote_name
    insert = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    query = model.objects.order_by("pk").values_list(*(f.attname for f in fields)).query
    # Rows converted to Python values as the ORM reads them (decimals, JSON, aware times).
    rows = query.get_compiler(connection=source).results_iter(chunked_fetch=True, chunk_size=chunk_size)
    copied, chunk = 0, []
    with target.cursor() as cursor:
        for row in rows:
            # Values as the target stores them, exactly as they were (no auto_now).
            chunk.append([f.get_db_prep_save(value, connection=target) for f, value in zip(fields, row, strict=True)])
            if len(chunk) >= chunk_size:
                cursor.executemany(insert, chunk)
                copied += len(chunk)
                chunk = []
                progress(f"{model._meta.db_table}: {copied} rows")
        if chunk:
            cursor.executemany(insert, chunk)
            copied += len(chunk)
    progress(f"{model._meta.db_table}: {copied} rows copied")
    return copied


def _count(connection, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        return cursor.fetchone()[0]


def _verify(models, source, target, report: CopyReport) -> None:
    for model in models:
        table = model._meta.db_table
        in_source, in_target = _count(source, table), _count(target, table)
        if not in_source == in_target == report.rows[table]:
            raise CopyError(f"{table}: {in_source} rows in the source, {in_target} in the target; nothing was copied")
