"""Settings for the Order Scheduling Center, read from the environment (and `.env`).

Every variable is documented in `.env.example` and the README. A bad value raises
ImproperlyConfigured naming the variable, so the service refuses to start.
"""

import json
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from scheduler_site.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_levels,
    env_list,
    env_matching,
    env_path,
    env_rate,
    env_str,
    env_time_zone,
    env_url,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / "data"

# Real environment variables win over the optional .env file.
load_dotenv(env_path("ENV_FILE", BASE_DIR / ".env", BASE_DIR), override=False)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key("SECRET_KEY", DATA_DIR / "secret_key")
HOST = env_str("HOST", "127.0.0.1") or "127.0.0.1"
PORT = env_int("PORT", 9002, minimum=1, maximum=65535)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
if HOST not in ("0.0.0.0", "::") and HOST not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(HOST)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 2, minimum=1, maximum=64)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files (no CDN)
    "django_q",
    "axes",  # failed logins limited per address and per username (see Auth below)
    "orders",
]

MIDDLEWARE = [
    # Outermost, so that every answer carries the security headers, even a 413.
    "orders.middleware.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # X_FRAME_OPTIONS, on a 413 too
    "django.middleware.security.SecurityMiddleware",
    "orders.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out login into the lockout page (429)
]

ROOT_URLCONF = "scheduler_site.urls"
WSGI_APPLICATION = "scheduler_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=60)
except Exception as exc:  # dj_database_url raises several types for bad URLs
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if not _db["NAME"] or _db["NAME"] == ":memory:":
        raise ImproperlyConfigured("DATABASE_URL must name a SQLite file: workers share it across processes")
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Without these, concurrent workers lose writes to "database is locked". IMMEDIATE
    # makes every atomic() take the write lock up front, so it waits for the busy timeout
    # instead of failing when a read transaction tries to upgrade.
    _db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
    }
    _db["TEST"] = {"NAME": str(Path(_db["NAME"]).with_name("test_" + Path(_db["NAME"]).name))}
    # Django's backend, with writers queued for the write lock instead of polling for it
    # (see its docstring: the submit tail under load came from that polling).
    _db["ENGINE"] = "scheduler_site.backends.sqlite3"
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # No statement may run longer than this (0: no limit): a runaway query gives up with
    # an error instead of holding a connection and a web thread. Long migrations on a big
    # database: run `migrate` with DATABASE_STATEMENT_TIMEOUT=0.
    _timeout = env_int("DATABASE_STATEMENT_TIMEOUT", 30, minimum=0)
    _db.setdefault("OPTIONS", {})["options"] = f"-c statement_timeout={_timeout * 1000}"
else:
    raise ImproperlyConfigured("DATABASE_URL must be a sqlite:// or postgres:// URL")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and task queue ---------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must start with redis://, rediss:// or unix://")

# The cache is shared by every process: django-q2 publishes cluster liveness there,
# which the status endpoint reads.
# Submit throttling counts in Redis when there is one (exact across web processes);
# otherwise in each web process's memory (the rate then applies per process), which
# spares every submit a database write.
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
        "throttle": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"},
        "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"},
    }

ACCOUNTS_FILE = env_path("ORDER_SCHEDULER_ACCOUNTS_FILE", BASE_DIR / "config" / "okx_accounts.json", BASE_DIR)


def _enabled_accounts(path: Path) -> int:
    """Enabled entries of the accounts file; 0 when it cannot be read (sync_accounts
    reports why, naming the file)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["accounts"]
        return sum(1 for entry in entries if isinstance(entry, dict) and entry.get("enabled", True) is not False)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


# Worker processes are slots for waiting, not for computing: an order spends nearly all
# its time waiting on OKX, and a worker drains one account at a time. So the default is
# one per enabled account, plus two for fill tracking and recovery, at least 4; each
# costs little memory beyond the first (BENCHMARKS.md has the measurement).
Q_WORKERS = env_int("Q_WORKERS", min(64, max(4, _enabled_accounts(ACCOUNTS_FILE) + 2)), minimum=1, maximum=64)
Q_TIMEOUT = env_int("Q_TIMEOUT", 300, minimum=5)
Q_RETRY = env_int("Q_RETRY", Q_TIMEOUT * 2, minimum=10)
if Q_RETRY <= Q_TIMEOUT:
    raise ImproperlyConfigured("Q_RETRY must be greater than Q_TIMEOUT (django-q2 re-delivers after Q_RETRY)")
Q_CLUSTER = {
    "name": env_str("Q_CLUSTER_NAME", "order_scheduler") or "order_scheduler",
    "workers": Q_WORKERS,
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    "max_attempts": 1,
    "queue_limit": Q_WORKERS * 2,
    # ORM broker only, and only for a pusher that cannot bind its nudge socket
    # (scheduler_site.taskqueue): an order then waits half of this on average before a
    # worker hears of it.
    "poll": env_float("Q_POLL", 0.02, minimum=0.01),
    "save_limit": -1,  # successful wake-up tasks carry no information worth keeping
    "ack_failures": True,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker, its pusher woken by a nudge from whoever enqueues (see the module).
    Q_CLUSTER["broker_class"] = "scheduler_site.taskqueue.NudgedORM"

# --- Order scheduler --------------------------------------------------------------------

ORDER_SCHEDULER = {
    "ACCOUNTS_FILE": ACCOUNTS_FILE,
    "LOG_DIR": env_path("ORDER_SCHEDULER_LOG_DIR", DATA_DIR / "order_scheduler_logs", BASE_DIR),
    # An account lease outlives any single exchange call by a wide margin; a crashed
    # holder's lease expires after this many seconds and recovery takes over.
    "LEASE_SECONDS": env_int("ORDER_SCHEDULER_LEASE_SECONDS", 60, minimum=2),
    "RECOVERY_INTERVAL": env_float("ORDER_SCHEDULER_RECOVERY_INTERVAL", 5.0, minimum=0.1),
    # `serve` restarts a cluster silent, or not starting runnable orders, this long.
    "STALL_SECONDS": env_float("ORDER_SCHEDULER_STALL_SECONDS", 90.0, minimum=1.0),
    # Every placement carries OKX's expTime: the exchange's clock now plus this. OKX
    # processes nothing of the request after it, so an order absent after its deadline
    # (plus the clock margin) was never placed and only then may be sent again.
    "PLACE_DEADLINE_SECONDS": env_float("ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS", 5.0, minimum=0.5),
    # Allowance for the error of the exchange clock's estimate, on top of each deadline.
    "CLOCK_MARGIN_SECONDS": env_float("ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS", 2.0, minimum=0.1),
    # The longest one request to OKX may take (ccxt's timeout; an account's
    # options.timeout_ms overrides it).
    "EXCHANGE_TIMEOUT": env_float("ORDER_SCHEDULER_EXCHANGE_TIMEOUT", 10.0, minimum=0.5),
    # An order submitted without expires_in expires this many seconds after submit when
    # not placed by then (0: never), so nothing executes long after it was asked for.
    "DEFAULT_EXPIRES_IN": env_int("ORDER_SCHEDULER_DEFAULT_EXPIRES_IN", 120, minimum=0, maximum=7 * 24 * 3600),
    # Orders an account's drainer sends in one OKX batch request (trade/batch-orders
    # takes up to 20; 1 sends one order per request). An account's options.batch: false
    # turns batching off for it.
    "BATCH_SIZE": env_int("ORDER_SCHEDULER_BATCH_SIZE", 20, minimum=1, maximum=20),
    # OKX's published placement limits, per account (options.rate_limits overrides them).
    "RATE_LIMITS": {
        "place_per_instrument": env_int("ORDER_SCHEDULER_RATE_PLACE_PER_INSTRUMENT", 60, minimum=1),
        "batch_orders_per_instrument": env_int("ORDER_SCHEDULER_RATE_BATCH_ORDERS_PER_INSTRUMENT", 300, minimum=1),
        "orders_per_account": env_int("ORDER_SCHEDULER_RATE_ORDERS_PER_ACCOUNT", 1000, minimum=1),
        "window_seconds": env_float("ORDER_SCHEDULER_RATE_WINDOW_SECONDS", 2.0, minimum=0.1),
    },
    # How often resting limit orders are looked up on the exchange.
    "TRACK_INTERVAL": env_float("ORDER_SCHEDULER_TRACK_INTERVAL", 10.0, minimum=1.0),
    # While an account or all trading is paused, submits are held as queued or refused.
    "PAUSED_SUBMITS": env_choice("ORDER_SCHEDULER_PAUSED_SUBMITS", "hold", ("hold", "refuse")),
    "MAX_BATCH": env_int("ORDER_SCHEDULER_MAX_BATCH", 100, minimum=1),
    "MAX_ORDERS_LIMIT": env_int("ORDER_SCHEDULER_MAX_ORDERS_LIMIT", 1000, minimum=1),
    # Rows one CSV export may carry; a larger one is refused with a 400 saying how to
    # narrow it (manage.py export_orders has no bound: it runs off the web threads).
    "EXPORT_MAX_ROWS": env_int("ORDER_SCHEDULER_EXPORT_MAX_ROWS", 100_000, minimum=1),
    # Journal files of days more than this many days ago are gzipped by the daily
    # archive_logs schedule (and by `manage.py archive_logs` without --older-than).
    "ARCHIVE_DAYS": env_int("ORDER_SCHEDULER_ARCHIVE_DAYS", 7, minimum=0),
    # Today's queue-wait and execution percentiles are taken over the latest this many
    # started orders (all of them on a quieter day); see orders.selectors.stats.durations.
    "DURATION_SAMPLE": env_int("ORDER_SCHEDULER_DURATION_SAMPLE", 2000, minimum=10, maximum=1_000_000),
    # Open event streams each web process holds (one gunicorn thread each, beside the
    # API's 4); past it a stream is refused with a 503 (orders.services.stream).
    "STREAMS_PER_WORKER": env_int("ORDER_SCHEDULER_STREAMS_PER_WORKER", 256, minimum=1, maximum=4096),
    # Accounts' base_url and hostname must be https on OKX's own hosts, and the Telegram
    # API https, unless this is set (the test fakes, a self-hosted gateway): credentials
    # must not be sent in the clear or to someone else by a typo in a config file.
    "ALLOW_INSECURE_BASE_URL": env_bool("ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL", False),
}


def _check_timing(o: dict) -> None:
    """The timeouts must nest, or "one request in flight per account" cannot hold: a
    placement is sent only while the lease outlives its deadline plus the clock margin;
    a drainer hands over after a third of Q_TIMEOUT and one step (STEP_REQUESTS requests
    of at most EXCHANGE_TIMEOUT) must fit in the rest; django-q2 re-delivers a task only
    after Q_RETRY, which must exceed Q_TIMEOUT."""
    send = o["PLACE_DEADLINE_SECONDS"] + o["CLOCK_MARGIN_SECONDS"]
    if o["LEASE_SECONDS"] <= send:
        raise ImproperlyConfigured(
            f"ORDER_SCHEDULER_LEASE_SECONDS ({o['LEASE_SECONDS']}) must exceed ORDER_SCHEDULER_PLACE_DEADLINE_SECONDS"
            f" + ORDER_SCHEDULER_CLOCK_MARGIN_SECONDS ({send:g})"
        )
    if o["LEASE_SECONDS"] >= Q_TIMEOUT:
        raise ImproperlyConfigured("ORDER_SCHEDULER_LEASE_SECONDS must be below Q_TIMEOUT")
    step = 5 * (o["EXCHANGE_TIMEOUT"] + 1)
    if Q_TIMEOUT / 3 + step >= Q_TIMEOUT:
        raise ImproperlyConfigured(
            f"Q_TIMEOUT ({Q_TIMEOUT}) must exceed 1.5 x 5 x (ORDER_SCHEDULER_EXCHANGE_TIMEOUT + 1) ({1.5 * step:g}): "
            "a drainer's last exchange step must end before django-q2 stops the task"
        )


_check_timing(ORDER_SCHEDULER)

# --- Telegram notifications -------------------------------------------------------------

# Each event is sent as a normal message ("on"), without sound ("silent") or not at all.
TELEGRAM_EVENT_DEFAULTS = {
    "order_failed": "on",
    "order_expired": "on",
    "order_stuck": "on",
    "account_paused": "on",
    "scheduler_stopped": "on",
    "scheduler_started": "silent",
    "order_succeeded": "off",
    "order_filled": "off",
    "order_exchange_cancelled": "on",
}
TELEGRAM = {
    "BOT_TOKEN": env_matching(
        "TELEGRAM_BOT_TOKEN", r"[0-9]+:[A-Za-z0-9_-]+", what="a bot token from @BotFather", secret=True
    ),
    "CHAT_ID": env_matching(
        "TELEGRAM_CHAT_ID", r"-?[0-9]+|@[A-Za-z][A-Za-z0-9_]{3,}", what="a numeric chat id or @channelname"
    ),
    "API_BASE_URL": env_url("TELEGRAM_API_BASE_URL", "https://api.telegram.org"),
    "EVENTS": env_levels("TELEGRAM_EVENTS", TELEGRAM_EVENT_DEFAULTS, ("on", "silent", "off")),
    "TIMEOUT": env_float("TELEGRAM_TIMEOUT", 10.0, minimum=0.1),
    # A burst becomes one message: the sender waits until no new event came for
    # GATHER_SECONDS (but no longer than BURST_WINDOW after the first) and sends at most
    # one message per BURST_WINDOW.
    "GATHER_SECONDS": env_float("TELEGRAM_GATHER_SECONDS", 5.0),
    "BURST_WINDOW": env_float("TELEGRAM_BURST_WINDOW", 60.0),
    "RETRY_SECONDS": env_float("TELEGRAM_RETRY_SECONDS", 5.0, minimum=0.1),
    "MAX_ATTEMPTS": env_int("TELEGRAM_MAX_ATTEMPTS", 10, minimum=1),
}
if not TELEGRAM["API_BASE_URL"].startswith("https://") and not ORDER_SCHEDULER["ALLOW_INSECURE_BASE_URL"]:
    raise ImproperlyConfigured(
        "TELEGRAM_API_BASE_URL must be https:// (a local Bot API server over http needs "
        "ORDER_SCHEDULER_ALLOW_INSECURE_BASE_URL=1)"
    )
if bool(TELEGRAM["BOT_TOKEN"]) != bool(TELEGRAM["CHAT_ID"]):
    raise ImproperlyConfigured(
        "TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID must be set together (leave both empty to disable Telegram)"
    )
if TELEGRAM["TIMEOUT"] * 4 > Q_TIMEOUT:
    raise ImproperlyConfigured("TELEGRAM_TIMEOUT must be at most a quarter of Q_TIMEOUT")

# --- HTTPS (production behind a TLS-terminating reverse proxy) ----------------------------

# HTTPS=1: secure cookies, HSTS, redirect plain HTTP (but /healthz, for load balancers).
HTTPS = env_bool("HTTPS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31536000, minimum=0)
    # Opt-in: HSTS on every subdomain, and the browsers' preload list, bind hosts this
    # service does not own and are slow to undo; the deploy check's reminders about them
    # are silenced until they are chosen (below).
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
# Every page: scripts and everything else only from this site, no inline script (styles
# may be inline: the admin's and the dashboard's style attributes), no framing, no
# plugins, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Signed-in sessions end after this many hours (Django's default is two weeks).
SESSION_COOKIE_AGE = env_int("SESSION_HOURS", 8, minimum=1, maximum=24 * 30) * 3600
# Only behind a proxy that sets X-Forwarded-Proto itself (never trust a client's).
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Auth, API --------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins on every login form (dashboard, admin, browsable API) are counted per
# client address and per username by django-axes; past LOGIN_FAILURE_LIMIT the form
# answers 429 (a lockout page) for LOGIN_LOCKOUT_MINUTES without checking any password.
# Counts live in the `throttle` cache: Redis (exact across processes) when REDIS_URL is
# set, else each web process's memory (the limit then applies per gunicorn worker), so a
# guess writes nothing to the database. The audit trail gets one login_failed event per
# address and username and one login_locked_out event per lockout (orders.apps).
AUTHENTICATION_BACKENDS = ["orders.auth.LoginLimitBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Behind reverse proxies that append the client's address to X-Forwarded-For, how many
# of them there are; 0 (the default) trusts only REMOTE_ADDR (a client could write
# anything into X-Forwarded-For). Used by the login limits and the audit trail alike.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_CACHE = "throttle"
AXES_CLIENT_IP_CALLABLE = "orders.services.audit.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_HTTP_RESPONSE_CODE = 429
# axes warns that a process-memory cache is not shared between processes: known and
# accepted on the embedded default (see above); with REDIS_URL the cache is shared.
SILENCED_SYSTEM_CHECKS = ["axes.W001"]
if HTTPS and not SECURE_HSTS_INCLUDE_SUBDOMAINS:
    SILENCED_SYSTEM_CHECKS.append("security.W005")  # HSTS_INCLUDE_SUBDOMAINS is opt-in
if HTTPS and not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")  # HSTS_PRELOAD is opt-in

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/order-scheduler"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    # Request bodies are JSON only (what the schema publishes; a form body that does not
    # parse must not read as "no account: all trading"), and hostile JSON (nested
    # thousands deep, NaN) is a 400, never a 500.
    "DEFAULT_PARSER_CLASSES": ["orders.api.parsers.SafeJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "orders.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": False,
    # Per user (and per address when anonymous); 429 with Retry-After past it. Submits:
    # ten a second sustained is more than a strategy needs (a batch counts once) and
    # leaves the web threads to everyone else; exports and statistics are the expensive
    # reads that could otherwise hold every thread while trading calls wait.
    "DEFAULT_THROTTLE_RATES": {
        "submit": env_rate("ORDER_SCHEDULER_SUBMIT_RATE", "600/min"),
        "export": env_rate("ORDER_SCHEDULER_EXPORT_RATE", "6/min"),
        "stats": env_rate("ORDER_SCHEDULER_STATS_RATE", "120/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Order Scheduling Center API",
    "DESCRIPTION": "Queue orders for OKX accounts and read their status, history and statistics. "
    'Every error answers `{"success": false, "error": ..., "errors": {...}}`. Authenticate with a token '
    "(`Authorization: Token <key>`) or a browser session.",
    "VERSION": "1.0.0",
    # 3.1 schemas are JSON Schema: clients and tests can validate responses with any
    # JSON Schema validator (nullable fields are type: [..., "null"]).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "orders.api.schema.tighten"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "MarginModeEnum": "orders.models.MarginMode",
        "AccountModeEnum": "orders.models.AccountMode",
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

# --- Internationalisation, static files -------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Logging and error pages: secrets never reach either (orders.redaction) -----------

DEFAULT_EXCEPTION_REPORTER = "orders.redaction.ScrubbingExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "orders.redaction.ScrubbingExceptionReporterFilter"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper() or "INFO"
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every known secret is masked in every record: message, arguments, traceback.
    "filters": {"scrub": {"()": "orders.redaction.SecretScrubFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {"ccxt": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
