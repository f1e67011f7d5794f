import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.services.accounts import sync_accounts

BASE_DIR = Path(__file__).resolve().parent.parent
# The seed report's API examples, copied verbatim into the repository (see its README).
CONTRACT_DIR = BASE_DIR / "tests" / "contract"
OUTPUT_DIR = BASE_DIR / "test-output"


_CHECKOUT = os.path.realpath(BASE_DIR)
_BESIDE = os.path.realpath(BASE_DIR.parent)
_TEMP = os.path.realpath(tempfile.gettempdir())
# The interpreter's own files, also where a virtualenv is a link to another checkout's.
_PYTHON = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}


def _stood_beside() -> frozenset[str]:
    """What stood beside the checkout when the suite started (a `../shared`), pytest's
    own folders aside: what a test must not read. Whatever appears there later is the
    tests' own (every temporary file, when the checkout sits in the temporary folder).
    A checkout right under / has the whole system beside it: nothing then."""
    if _BESIDE == "/":
        return frozenset()
    return frozenset(name for name in os.listdir(_BESIDE) if not name.startswith("pytest-of-"))


_STOOD_BESIDE = _stood_beside()


def _outside_repository(path: str) -> bool:
    """A path the suite must not read: what stood beside the checkout, or the home
    directory, other than the Python installation and the temporary folder (the tests'
    own files: pytest's, browser downloads, spooled exports)."""
    resolved = os.path.realpath(path)

    def under(root: str) -> bool:
        return resolved == root or resolved.startswith(root.rstrip("/") + "/")

    if under(_CHECKOUT) or any(under(p) for p in _PYTHON):
        return False
    if under(_BESIDE) and resolved != _BESIDE:
        return Path(resolved).relative_to(_BESIDE).parts[0] in _STOOD_BESIDE
    return under(os.path.realpath(os.path.expanduser("~"))) and not under(_TEMP)


def _standalone_guard(event: str, args: tuple) -> None:
    # A fresh clone must pass with nothing beside it: opening a file outside the
    # repository (a sibling folder, a home directory) fails the test that did.
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if os.path.isabs(path) and _outside_repository(path):
            raise PermissionError(f"tests may not read outside the repository: {path}")


sys.addaudithook(_standalone_guard)


def wait_for(predicate, *, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; fail the test with `message` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(autouse=True, scope="session")
def no_wake_socket_left(django_db_setup):
    """The task queue's wake-up socket of this run's clusters (their queue is named after
    the run) goes with the run, instead of piling up beside the test database."""
    yield
    from scheduler_site.taskqueue import wake_path

    Path(wake_path()).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def journal_dir(settings, tmp_path) -> Path:
    """Each test gets its own journal directory (service subprocesses inherit it)."""
    path = tmp_path / "journal"
    settings.ORDER_SCHEDULER = {**settings.ORDER_SCHEDULER, "LOG_DIR": path}
    return path


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language: a request in Chinese (LocaleMiddleware)
    leaves its language active in the thread, which would translate later messages."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture
def accounts(db):
    return sync_accounts()


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("root", "", "pw-root-123")


@pytest.fixture
def api(admin_user):
    client = APIClient()
    token = Token.objects.create(user=admin_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def subprocess_env(**extra) -> dict:
    """The environment for a service subprocess that shares this test's database."""
    env = dict(os.environ)
    settings_dict = connection.settings_dict
    if settings_dict["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{settings_dict['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{settings_dict['USER'] or ''}@{settings_dict['HOST'] or '127.0.0.1'}:"
            f"{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
        )
    env["DJANGO_SETTINGS_MODULE"] = "scheduler_site.settings"
    env["ORDER_SCHEDULER_LOG_DIR"] = str(django_settings.ORDER_SCHEDULER["LOG_DIR"])
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Service:
    """`manage.py serve` as a real subprocess: django-q2 cluster + supervisor (and the
    web server unless no_web)."""

    def __init__(self, *, args=("--no-web",), env=None, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "serve", *args],
            cwd=BASE_DIR,
            env=subprocess_env(**(env or {})),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_running(self, timeout: float = 30.0) -> None:
        from orders.selectors import cluster_status

        wait_for(lambda: cluster_status()["clusters"] > 0 or self._died(), timeout=timeout, message="cluster start")
        if self._died():
            pytest.fail(f"service exited early; log:\n{self.log_path.read_text()[-3000:]}")

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def children(self) -> list[int]:
        """Every live descendant process of the service."""
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        parents = dict((int(pid), int(ppid)) for pid, ppid in (line.split() for line in out.splitlines()))
        found, frontier = [], {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
            found.extend(frontier)
        return found

    def stop(self) -> None:
        leftovers = self.children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Anything left (a hung worker) must not outlive the test.
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture
def service_factory(transactional_db, request, tmp_path):
    started: list[Service] = []

    def start(**kwargs) -> Service:
        service = Service(log_path=tmp_path / f"service-{len(started)}.log", **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def output_dir(request) -> Path:
    path = OUTPUT_DIR / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def checked_api(api):
    """`api`, but every JSON response must validate against the published OpenAPI schema."""
    from tests.helpers import CheckedClient, published_schema

    return CheckedClient(api, published_schema(api))


def user_with_role(username: str, role: str = "trader", accounts=None):
    """A user in one of the role groups (viewer, trader, admin) with the all-accounts
    right (accounts=None) or limited to the accounts given (an empty list: none)."""
    from django.contrib.auth.models import Group

    from orders.models import AccountGrant
    from orders.services.access import all_accounts_permission

    user = get_user_model().objects.create_user(username, password=f"pw-{username}-123", is_staff=role == "admin")
    user.groups.add(Group.objects.get(name=role))
    if accounts is None:
        user.user_permissions.add(all_accounts_permission())
    for account_id in accounts or ():
        AccountGrant.objects.create(user=user, account_id=account_id)
    return user


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Submit throttle counts live in process memory on the embedded default: start each
    test with none."""
    from django.core.cache import caches

    caches["throttle"].clear()


@pytest.fixture(autouse=True)
def _events_tail():
    """No test leaves the live stream's tail thread behind: it reads the database, which
    the next test flushes (and pytest-django closes to a test without database access)."""
    yield
    from orders.services import stream

    stream.hub.close(wait=5)
    stream.hub = stream.Hub()
