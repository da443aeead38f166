"""SubscriptionHub settings.

Everything that differs between a laptop and production comes from environment
variables, with defaults that are safe (DEBUG off, no secrets) and that run
without any server: SQLite and Celery's filesystem transport under ./var.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url

from config import broker
from config.env import env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SUBSCRIPTIONHUB_VAR_DIR", BASE_DIR / "var"))


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("TESTING") or "pytest" in sys.modules
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "insecure-development-key-set-SECRET_KEY-in-production" if DEBUG or TESTING else ""
)
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000")
SITE_URL = os.environ.get("SITE_URL", "http://localhost:8000").rstrip("/")
SITE_NAME = os.environ.get("SITE_NAME", "SubscriptionHub")  # in e-mails ("Hello from …") and page titles

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "sharedkernel",
    "subscriptions",
    "billing",
    "notifications",
    "analytics",
    "config",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "sharedkernel.correlation.CorrelationIdMiddleware",
    "sharedkernel.consistency.ReadYourWritesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "sharedkernel.api.idempotency.IdempotencyKeyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
SITE_ID = 1

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
            "builtins": ["sharedkernel.templatetags.formatting"],  # |money and |number everywhere
        },
    }
]

# --- Database -------------------------------------------------------------
# DATABASE_URL=postgres://user@host:5432/name in production. The embedded
# default is SQLite, tuned so web, worker and beat can share the file: WAL
# journal, a busy timeout and IMMEDIATE transactions (otherwise two writers
# deadlock into "database is locked").
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'subscriptionhub.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests that run a worker process need a file, not an in-memory database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_subscriptionhub.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker, cache --------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS, CACHES = (
    broker.redis(REDIS_URL) if REDIS_URL else broker.embedded(BROKER_DIR, VAR_DIR / "cache")
)

# --- Celery ---------------------------------------------------------------
CELERY_TASK_ACKS_LATE = True  # a task killed mid-way is redelivered...
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...also when the worker process dies
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "subscriptionhub")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Event delivery (sharedkernel.bus) -------------------------------------
# A delivery not completed this long after commit is re-dispatched by the relay.
OUTBOX_REDISPATCH_AFTER = timedelta(seconds=env_int("OUTBOX_REDISPATCH_AFTER_SECONDS", 300))
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 8)
OUTBOX_RETRY_BASE_SECONDS = env_int("OUTBOX_RETRY_BASE_SECONDS", 5)
OUTBOX_BATCH_SIZE = env_int("OUTBOX_BATCH_SIZE", 200)
# DONE deliveries (about 20 per subscription per bill run) are deleted this long after completion
# by beat's sharedkernel.prune_outbox; open and FAILED rows are never pruned.
OUTBOX_DONE_RETENTION_DAYS = env_int("OUTBOX_DONE_RETENTION_DAYS", 7)
# A delivery still waiting for its upstream fact this long after its event is FAILED, naming the fact.
OUTBOX_WAIT_LIMIT_SECONDS = env_int("OUTBOX_WAIT_LIMIT_SECONDS", 86400)
# After a failed publish, dispatch after commit leaves deliveries to the relay this long without
# trying the broker (a failed publish costs a request about a second).
OUTBOX_BROKER_RETRY_SECONDS = env_int("OUTBOX_BROKER_RETRY_SECONDS", 5)
# Fault tests only: every dispatch sends each delivery twice (the ledger must make the copy a no-op).
OUTBOX_DUPLICATE_DELIVERIES = env_bool("OUTBOX_DUPLICATE_DELIVERIES", False)
# "celery" sends deliveries to workers; "manual" leaves them for the relay or a
# test's drain (unit tests of policies run without any broker).
EVENT_DISPATCH = os.environ.get("EVENT_DISPATCH", "celery")
# A test-clock advance runs in workers, turn by turn (sharedkernel.scheduling: what each of these bounds).
TEST_CLOCK_SETTLE_TIMEOUT = env_int("TEST_CLOCK_SETTLE_TIMEOUT", 120)
TEST_CLOCK_REQUEST_WAIT_SECONDS = float(os.environ.get("TEST_CLOCK_REQUEST_WAIT_SECONDS", "60"))
TEST_CLOCK_ADMIN_WAIT_SECONDS = float(os.environ.get("TEST_CLOCK_ADMIN_WAIT_SECONDS", "5"))
TEST_CLOCK_TURN_SECONDS = float(os.environ.get("TEST_CLOCK_TURN_SECONDS", "5"))
TEST_CLOCK_LEASE_SECONDS = env_int("TEST_CLOCK_LEASE_SECONDS", 120)
# "caller": the process that asks runs it (flow tests: the jobs then see the test's settings and monkeypatches).
TEST_CLOCK_ADVANCE_RUNS_IN = os.environ.get("TEST_CLOCK_ADVANCE_RUNS_IN", "worker")
# How far one advance may move a test clock (and how far past real time a clock may start):
# a bounded horizon is refused up front instead of running renewals for minutes.
TEST_CLOCK_MAX_ADVANCE = timedelta(days=env_int("TEST_CLOCK_MAX_ADVANCE_DAYS", 3 * 366))
# A gateway, tax, SMTP or webhook call while a database transaction is open (sharedkernel.outside):
# "raise" under tests and DEBUG, "log" (an error line) in production.
OUTSIDE_TRANSACTION_CHECK = os.environ.get("OUTSIDE_TRANSACTION_CHECK", "raise" if DEBUG or TESTING else "log")
# An event a command records without declaring it in @command(records=...) (sharedkernel.declarations):
# "raise" under tests and DEBUG, "log" (an error line) in production.
COMMAND_RECORDS_CHECK = os.environ.get("COMMAND_RECORDS_CHECK", "raise" if DEBUG or TESTING else "log")
BEAT_HEARTBEAT_MAX_AGE = timedelta(seconds=env_int("BEAT_HEARTBEAT_MAX_AGE_SECONDS", 180))

# --- Domain settings -------------------------------------------------------
TRIAL_REMINDER_DAYS = env_int("TRIAL_REMINDER_DAYS", 3)
#: A price rise takes effect no sooner than this many days after the customer is told (a cut needs no notice).
PRICE_CHANGE_NOTICE_DAYS = env_int("PRICE_CHANGE_NOTICE_DAYS", 30)
#: Subscriptions a price migration schedules per transaction.
PRICE_MIGRATION_BATCH = env_int("PRICE_MIGRATION_BATCH", 500)
# Notifications: the trial-ending reminder, and whether webhooks may go to private addresses
# (never in production; tests allow loopback receivers).
NOTIFY_TRIAL_REMINDER_DAYS = env_int("NOTIFY_TRIAL_REMINDER_DAYS", 3)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
# Exact origins ("http://127.0.0.1:8000") webhooks may reach although they are private or local:
# the demo's own receiver. Every other private, loopback or metadata address stays refused.
WEBHOOK_ALLOWED_ORIGINS = env_list("WEBHOOK_ALLOWED_ORIGINS", "")
# /demo/webhook-receiver/ answers (verifying the signature) only when this is on: `make run` sets it.
DEMO_WEBHOOK_RECEIVER = env_bool("DEMO_WEBHOOK_RECEIVER", False)

# The staff board (/staff/board/) shows one swimlane per context, left to right in the order the
# main flows run: sign-up and trial, invoice, tax, charge and dunning, then e-mail, then analytics.
BOARD_LANE_ORDER = ["subscriptions", "billing", "notifications", "analytics", "sharedkernel"]
BOUNCE_WEBHOOK_TOKEN = os.environ.get("BOUNCE_WEBHOOK_TOKEN", "")
# Late usage of a closed period is accepted this long after its end; then it is final and billed.
USAGE_GRACE_SECONDS = env_int("USAGE_GRACE_SECONDS", 3600)

# Billing's adapters (billing/ports.py). The defaults work offline: the sandbox gateway
# with API.md's test cards, and the TaxRate table edited in the admin.
BILLING_PAYMENT_GATEWAY = os.environ.get("BILLING_PAYMENT_GATEWAY", "sandbox")  # sandbox | stripe
BILLING_TAX_CALCULATOR = os.environ.get("BILLING_TAX_CALCULATOR", "table")  # table | http
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")  # blank: Stripe's own
TAX_API_URL = os.environ.get("TAX_API_URL", "")
TAX_API_KEY = os.environ.get("TAX_API_KEY", "")
TAX_API_TIMEOUT = env_int("TAX_API_TIMEOUT", 3)
TAX_API_RETRIES = env_int("TAX_API_RETRIES", 2)
TAX_API_CACHE_SECONDS = env_int("TAX_API_CACHE_SECONDS", 3600)
# A charge (or refund) still in flight this long after its intent committed was left by a crash:
# billing.resolve_charges asks the gateway again with the same idempotency key. Longer than a batch's
# calls take (1,000 charges at ~300 ms each).
BILLING_CHARGE_RESOLVE_AFTER_SECONDS = env_int("BILLING_CHARGE_RESOLVE_AFTER_SECONDS", 900)

# --- Auth -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "subscriptions:dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SIGNUP_FORM_CLASS = "subscriptions.forms.SignupProfileForm"
ACCOUNT_ADAPTER = "subscriptions.adapters.AccountAdapter"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[SubscriptionHub] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https") else "http"

# --- E-mail ---------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "sent-mail")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "SubscriptionHub <billing@subscriptionhub.local>")

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sharedkernel.api.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "sharedkernel.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["sharedkernel.api.filters.ListFilterBackend"],
    # JSON only: the bodies hold nested money objects that cannot be form-encoded. Customer pages
    # and the admin are Django views with their own forms, untouched by this.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "sharedkernel.api.schema.ApiSchema",
    "EXCEPTION_HANDLER": "sharedkernel.api.errors.api_exception_handler",
    "DEFAULT_METADATA_CLASS": "sharedkernel.api.metadata.ApiMetadata",  # OPTIONS without fetching an object
    "DEFAULT_THROTTLE_CLASSES": [
        "sharedkernel.api.throttling.AnonThrottle",
        "sharedkernel.api.throttling.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/minute"),
        "user": os.environ.get("API_THROTTLE_USER", "6000/minute"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# A key's user is cached per process this long (sharedkernel/api/authentication.py): a key revoked in
# another process stops working within it; 0 looks every request up.
API_TOKEN_CACHE_SECONDS = env_int("API_TOKEN_CACHE_SECONDS", 10)
# Throttles add their counts to the shared cache in batches of this part of the limit, or this often
# (sharedkernel/api/throttling.py): a limit under 100 is counted exactly.
THROTTLE_SYNC_FRACTION = 0.01
THROTTLE_SYNC_SECONDS = 5.0
SPECTACULAR_SETTINGS = {
    "TITLE": "SubscriptionHub API",
    "DESCRIPTION": "Subscription billing: plans, customers, subscriptions, invoices, payments, "
    'usage, webhooks and analytics. Errors are {"error": {"code", "message", "details"}}; '
    "every POST accepts an Idempotency-Key header.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sharedkernel.api.schema.money_component",
    ],
    # Swagger UI and ReDoc assets are served by the app itself, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
IDEMPOTENCY_KEY_TTL = timedelta(hours=env_int("IDEMPOTENCY_KEY_TTL_HOURS", 24))

# --- I18N, static ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"

# --- Logging: every line carries the correlation id of its chain -----------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "correlation": {"()": "sharedkernel.correlation.CorrelationIdLogFilter"},
        "quiet_probe": {"()": "sharedkernel.logfilters.QuietProbe"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["correlation"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["quiet_probe"]},
        "celery": {"level": os.environ.get("CELERY_LOG_LEVEL", "WARNING")},
    },
}

SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
X_FRAME_OPTIONS = "SAMEORIGIN"

# --- Notifications: webhook HTTP timeouts (seconds) ---------------------------
# A receiver must accept the connection within the first and answer within the second;
# slower is a failed attempt, retried on the backoff schedule.
WEBHOOK_CONNECT_TIMEOUT = float(os.environ.get("WEBHOOK_CONNECT_TIMEOUT", "3"))
WEBHOOK_READ_TIMEOUT = float(os.environ.get("WEBHOOK_READ_TIMEOUT", "10"))
