"""Settings for the billing system, all read from the environment (django-environ).

Every variable is listed with a safe default in `.env.example`. There is one settings
module: variables switch behaviour (DEBUG, secure cookies, Stripe host), never a second file.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ

from config import stackfile

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local `.env` (copied from `.env.example`) is read when present; real environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# With no DATABASE_URL, a command run beside `make run` (`python manage.py ...`, a Celery shell)
# uses the running stack's PostgreSQL, Redis, Stripe emulator and site URL (`.local/stack.json`,
# config/stackfile.py); variables that are set still win. Never under pytest: the test suite must
# not touch (or flush) the development services.
if not os.environ.get("DATABASE_URL") and "pytest" not in sys.modules:
    for _name, _value in stackfile.environment().items():
        os.environ.setdefault(_name, _value)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me-" + "x" * 40)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "billing.stripe_mirror_app.StripeMirrorConfig",  # dj-stripe, with its admin heading
    "django_htmx",
    "axes",
    "billing",
    "credits",
    "usage",
    "invoices",
]

MIDDLEWARE = [
    # API calls with `Authorization: Bearer <key>` skip the browser-only middleware below
    # (sessions, CSRF, messages, htmx, static files): config/middleware.py.
    "config.middleware.ApiKeyLaneMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.parsers.BodyLimitMiddleware",
    "config.middleware.CSPMiddleware",  # django-csp's, the settings' policy built once
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/billing")}
# Django's PostgreSQL backend whose health check (CONN_HEALTH_CHECKS) costs no round trip on a quiet
# connection: config/postgres/base.py.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "config.postgres"
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own their transactions
# Persistent connections, one per serving thread: gunicorn (config/gunicorn.py) runs
# WEB_CONCURRENCY x WEB_THREADS threads, which bounds the web server's connections to PostgreSQL.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# A persistent connection is checked before its first use in each request, so a connection PostgreSQL
# dropped (a restart) is replaced instead of failing a request: a poll() of its socket, and Django's
# SELECT 1 only when the socket is not quiet (config/postgres/base.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
# Names each process kind in pg_stat_activity (`make run` sets billing-web, billing-worker, ...).
DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = env(
    "DB_APPLICATION_NAME", default="billing"
)
# Server-side prepared statements, for the few queries that bind parameters server-side (the credit
# ledger's hot path, `credits/hot_path.py`); Django's own queries bind client-side and are never
# prepared. Empty turns them off, e.g. behind PgBouncer older than 1.21 in transaction mode.
_prepare_threshold = env("DB_PREPARE_THRESHOLD", default="5")
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    int(_prepare_threshold) if _prepare_threshold else None
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # Django's Redis cache, a miss (not an error) while Redis is away: config/cache.py.
        "BACKEND": "config.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="billing"),
        "OPTIONS": {
            "socket_timeout": env.float("CACHE_REDIS_TIMEOUT", default=0.5),
            "socket_connect_timeout": env.float("CACHE_REDIS_TIMEOUT", default=0.5),
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Login lockout (django-axes) on both sign-in pages, /accounts/login/ and /admin/login/ ---
# After LOGIN_FAILURE_LIMIT wrong passwords for one username from one address (config/client_ip.py),
# that pair is refused for LOGIN_LOCKOUT_MINUTES with a 429 page saying so; a success resets it.
# Attempts are rows in PostgreSQL (axes' database handler), so the lockout holds while Redis is down.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "config.client_ip.axes_client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "billing-home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env("STATICFILES_STORAGE", default="whitenoise.storage.CompressedStaticFilesStorage")
    },
}
# Served by WhiteNoise from STATIC_ROOT (`collectstatic`, which `make run` and the image run), with
# far-future caching for the hashed names of the manifest storage; DEBUG serves from the apps.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security: switched by variables, not by a second settings file. ---
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp) on every page: scripts only from this site (htmx is a static
# file, no page has an inline script or handler), no framing by anyone (frame-ancestors, as
# X-Frame-Options), no plugins, no <base> elsewhere. Inline styles are allowed (style attributes in
# the templates and the invoice document's <style>, which is also rendered for the PDF and e-mail);
# scripts are not. The Swagger page (/api/docs/) loads its UI from a CDN and is left out.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Hosts a success, cancel or return URL (Checkout, the customer portal, setup mode, credit packs)
# may point at, besides SITE_URL's own host; anything else is a 400 (billing/redirects.py).
REDIRECT_ALLOWED_HOSTS = env.list("REDIRECT_ALLOWED_HOSTS", default=[])

# --- Client addresses and rate limits ---
# Proxies in front of the application that append to X-Forwarded-For (0: the header is ignored and
# the socket's address counts; config/client_ip.py). docker-compose.yml has no proxy of its own.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
THROTTLE_RATES = {
    "anon": env("THROTTLE_ANON", default="120/min"),  # an anonymous caller, per address
    "user": env("THROTTLE_USER", default="6000/min"),  # per API key, platform key or user
    # per address, whoever calls from it (defaults to the per-caller rate)
    "address": env("THROTTLE_ADDRESS", default=env("THROTTLE_USER", default="6000/min")),
}
THROTTLE_REDIS_URL = env("THROTTLE_REDIS_URL", default=REDIS_URL)
THROTTLE_REDIS_TIMEOUT = env.float("THROTTLE_REDIS_TIMEOUT", default=0.25)  # seconds per round trip
THROTTLE_REDIS_RETRY_SECONDS = env.float("THROTTLE_REDIS_RETRY_SECONDS", default=5.0)  # after a failure
THROTTLE_KEY_PREFIX = env("THROTTLE_KEY_PREFIX", default="billing:throttle")
# Each process takes this share of a limit from Redis at once and spends it locally (at least 1: a
# limit under 200 a window is counted request by request); 0 counts every request in Redis.
THROTTLE_LEASE_FRACTION = env.float("THROTTLE_LEASE_FRACTION", default=0.01)

# --- Django REST framework and the API contract ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "billing.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Per caller and per address, one Redis round trip, open when Redis is away: config/throttling.py.
    "DEFAULT_THROTTLE_CLASSES": ["config.throttling.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": True,
    # Strict JSON (config.parsers): 413 over the body limit, 400 for NUL, lone surrogates, deep nesting.
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# The largest request body (bytes) the API reads; larger answers 413 `request_too_large`.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Billing API",
    "DESCRIPTION": "Plans, subscriptions, credits, usage and invoices for each organization.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {"IntervalEnum": "billing.models.Interval"},
}

# --- Celery (Redis broker, django-celery-beat schedules editable in the admin) ---
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies runs again; tasks are safe to run twice
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died unacknowledged is delivered again once this many seconds have passed
# (kombu looks for such tasks every `unacked_restore_interval` seconds).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=60),
    "unacked_restore_throttle": 1,
}
CELERY_RESULT_EXPIRES = 3600
# While Redis is away an enqueue gives up quickly and the task goes to the task outbox
# (config/task_outbox.py) instead of holding the request: a few publish retries, and the result
# backend's reconnection (20 tries a second apart by default) cut to 3 tries within 1.5 s, which a
# worker storing a result also rides out a Redis restart with.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}
}
# Auto-refill: turned off after this many failed payments in a row; at most this much charged
# per account per rolling hour (minor units) -- a larger shortfall is capped and alerted.
CREDITS_AUTO_REFILL_MAX_DECLINES = env.int("CREDITS_AUTO_REFILL_MAX_DECLINES", default=3)
CREDITS_AUTO_REFILL_HOURLY_CAP = env.int("CREDITS_AUTO_REFILL_HOURLY_CAP", default=100_000)
# An auto-refill purchase untouched this long has lost its task: the sweep (beat, every 2 minutes)
# enqueues it again.
CREDITS_AUTO_REFILL_STALE_SECONDS = env.int("CREDITS_AUTO_REFILL_STALE_SECONDS", default=300)
# Stripe refuses meter events older than 35 days: alert when unsent usage is this old.
USAGE_METER_BACKLOG_ALERT_DAYS = env.int("USAGE_METER_BACKLOG_ALERT_DAYS", default=30)
# A task copy that finds another copy running (config/leases.py) comes back this much later.
TASK_LEASE_RETRY_SECONDS = env.int("TASK_LEASE_RETRY_SECONDS", default=30)

# --- Stripe (dj-stripe) ---
# With no real key the project talks to the bundled emulator (stripe_emulator/) at STRIPE_API_HOST.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="sk_test_emulator000000000000000000000000")
STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
STRIPE_PUBLIC_KEY = env("STRIPE_PUBLIC_KEY", default="pk_test_emulator000000000000000000000000")
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith("sk_live_")
STRIPE_USES_EMULATOR = "emulator" in STRIPE_SECRET_KEY or env.bool("STRIPE_USE_EMULATOR", default=False)
if STRIPE_USES_EMULATOR:
    # dj-stripe points stripe-python here once, at import time.
    STRIPE_API_HOST = env("STRIPE_API_HOST", default="http://127.0.0.1:12111")
STRIPE_API_VERSION = env("STRIPE_API_VERSION", default="2026-08-26.dahlia")
# Each Stripe attempt gives up after this many seconds (connecting, and each read); failed attempts
# (connection errors, timeouts, 409, 5xx) are retried this many times with the same idempotency
# key. billing/stripe_api.py applies both; the worst case (3 x 8 s + 1.5 s of back-off = 25.5 s)
# must stay below gunicorn's WEB_TIMEOUT (60 s), which a test checks.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=8.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
DJSTRIPE_SUBSCRIBER_MODEL = "billing.Organization"
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Webhook signatures older than the endpoint's tolerance (300 s, Stripe's) are refused by
# stripe-python; newer than now + this many seconds (clock skew) by billing/webhooks.py.
STRIPE_WEBHOOK_FUTURE_TOLERANCE = env.int("STRIPE_WEBHOOK_FUTURE_TOLERANCE", default=60)

# --- E-mail (console backend in development) ---
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="billing@example.com")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging: structured enough to read, never a card number or a secret ---
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
    },
}

SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])
if STRIPE_USES_EMULATOR:
    SILENCED_SYSTEM_CHECKS.append("djstripe.W002")  # STRIPE_API_HOST is intended: it is the emulator
DEMO_PASSWORD = env("DEMO_PASSWORD", default="demo-billing-2026")

# --- API keys ---
# Seconds each process keeps an active API / platform key after reading it (`billing/key_cache.py`):
# the bound on how long a revoked, deleted or changed key still works in the other processes (the
# process that revokes forgets it at once). 0 reads the key on every request.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=10.0)
API_KEY_CACHE_SIZE = env.int("API_KEY_CACHE_SIZE", default=10000)  # keys per process
# A key's `last_used_at` is written at most once per this many seconds, not on every call.
API_KEY_TOUCH_SECONDS = env.float("API_KEY_TOUCH_SECONDS", default=60.0)

# --- Credits ---
# The order grants are drawn from by a consumption, by source; soonest expiry first within a source.
CREDITS_CONSUMPTION_ORDER = env.list(
    "CREDITS_CONSUMPTION_ORDER", default=["purchase", "refund", "subscription", "promo", "manual"]
)

# --- Notices ---
# Staff notices (failed payments, cancellations, disputes, unusual consumption, reconcile drift).
BILLING_ADMIN_EMAILS = env.list("BILLING_ADMIN_EMAILS", default=[])
# Unusual consumption (a staff alert): credits consumed in the last 24 hours at least
# `min_credits` and more than `factor` times the organization's average day over `baseline_days`.
BILLING_UNUSUAL_CONSUMPTION = {
    "factor": env.float("BILLING_UNUSUAL_CONSUMPTION_FACTOR", default=5.0),
    "baseline_days": env.int("BILLING_UNUSUAL_CONSUMPTION_BASELINE_DAYS", default=14),
    "min_credits": env.int("BILLING_UNUSUAL_CONSUMPTION_MIN_CREDITS", default=500),
}

# --- Usage metering ---
# Redis for the quota counters (a cache: rebuilt from the database when missing or unreachable).
USAGE_COUNTERS_REDIS_URL = env("USAGE_COUNTERS_REDIS_URL", default=REDIS_URL)
USAGE_REDIS_TIMEOUT = env.float("USAGE_REDIS_TIMEOUT", default=0.25)  # seconds per Redis call
USAGE_REDIS_RETRY_SECONDS = env.float("USAGE_REDIS_RETRY_SECONDS", default=2.0)  # after a failure
USAGE_COUNTER_TTL = env.int("USAGE_COUNTER_TTL", default=3600)  # seconds a counter lives before a rebuild
# The absolute URL a quota refusal points at; {site_url} and {organization_id} are filled in.
USAGE_UPGRADE_URL = env("USAGE_UPGRADE_URL", default="{site_url}/billing/{organization_id}/upgrade/")
# Dimension keys rolled up per day for `GET /usage/stats` (others are stored on the event only).
USAGE_ROLLUP_DIMENSIONS = env.list("USAGE_ROLLUP_DIMENSIONS", default=["platform", "message_type", "channel"])
# Stripe meter sync: events per task run and per second (Stripe's meter event limit is higher).
USAGE_METER_SYNC_BATCH = env.int("USAGE_METER_SYNC_BATCH", default=500)
USAGE_METER_EVENTS_PER_SECOND = env.float("USAGE_METER_EVENTS_PER_SECOND", default=50.0)
# Seconds each process keeps the metric, price and plan rows it reads on every usage call.
USAGE_CATALOG_CACHE_SECONDS = env.float("USAGE_CATALOG_CACHE_SECONDS", default=5.0)

# --- Invoices ---
# Who issues the invoices and statements (printed on every document); address lines split by "|".
INVOICE_ISSUER_NAME = env("INVOICE_ISSUER_NAME", default="Billing")
INVOICE_ISSUER_ADDRESS = env("INVOICE_ISSUER_ADDRESS", default="")
