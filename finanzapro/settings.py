"""FinanzaPro settings, read from the environment with django-environ.

Development needs no service: SQLite and the Celery filesystem broker under var/, mail to
the local catcher. Tests (pytest sets PYTEST_VERSION) default to PostgreSQL and Redis on
127.0.0.1. Production (DJANGO_ENV=production) refuses to start without its secrets.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DJANGO_ENV = env.str("DJANGO_ENV", default="test" if "PYTEST_VERSION" in os.environ else "development")
if DJANGO_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, test or production, not {DJANGO_ENV!r}.")
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"


def _required(name: str) -> str:
    """A variable production cannot start without, named in the error."""
    value = str(env.str(name, default=""))
    if not value:
        raise ImproperlyConfigured(
            f"{name} is required when DJANGO_ENV=production; set it in the environment or in .env."
        )
    return value


if PRODUCTION:
    for _name in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS"):
        _required(_name)
    if not env.str("CELERY_BROKER_URL").startswith(("redis://", "rediss://")):
        raise ImproperlyConfigured("CELERY_BROKER_URL must be a redis:// or rediss:// URL in production.")

DEBUG = env.bool("DEBUG", default=DJANGO_ENV == "development")
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-dev-only-8c2f4e0b7a1d4c9e9b3f6a5d2e1c0b9a")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_celery_results",
    "health_check",
    "django_ratelimit",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "stores",
    "invoices",
    "mailer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

if PRODUCTION:
    # Serves the collected static files; development and tests serve them from the apps.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "finanzapro.urls"
WSGI_APPLICATION = "finanzapro.wsgi.application"
ASGI_APPLICATION = "finanzapro.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    },
]

# Database: SQLite under var/ for development, PostgreSQL for tests and production.
_default_db = (
    "postgres://postgres@127.0.0.1:5432/finanzapro" if TESTING else f"sqlite:///{VAR_DIR / 'finanzapro.sqlite3'}"
)
DATABASES = {"default": env.db_url("DATABASE_URL", default=_default_db)}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60 if PRODUCTION else 0))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the worker write to the same file.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_PREPARED_STATEMENTS", default=True
):
    # Parameters bound by the server, and a statement run 5 times on a connection prepared
    # there: PostgreSQL parses and plans it once per connection instead of every time (planning
    # an email's read of its delivery, invoice, customer, store and reports cost ten times running
    # it). Turn off behind a connection pooler in transaction mode without prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

if DJANGO_ENV == "development":
    _default_cache = f"filecache://{VAR_DIR / 'cache'}"
elif TESTING:
    # Each test starts with an empty cache (rate-limit counters live there), and clearing a
    # Redis cache flushes its whole database: give it the database after the broker's.
    _redis = urlsplit(REDIS_URL)
    _cache_db = int(_redis.path.lstrip("/") or 0) + 1
    _default_cache = _redis._replace(path=f"/{_cache_db}").geturl().replace("redis://", "rediscache://", 1)
else:
    _default_cache = REDIS_URL.replace("redis://", "rediscache://")
CACHES = {"default": env.cache_url("CACHE_URL", default=_default_cache)}

# django-ratelimit counts requests in the default cache and checks that cache's backend.
# W001 ("not officially supported") names Django's own RedisCache, which increments with
# Redis INCR, atomically: all the library needs. In development the file cache (E003: no
# atomic increment) may let a request or two past a limit, which is fine there.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if DJANGO_ENV == "development":
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing speed is not under test; the default hasher makes every sign-in ~0.3 s.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Internationalisation: Spanish first, English available. Costa Rican number formats
# (space for thousands, comma for decimals) come from finanzapro/formats.
LANGUAGE_CODE = "es"
LANGUAGES = [("es", _("Spanish")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["finanzapro.formats"]
USE_I18N = True
USE_THOUSAND_SEPARATOR = True
TIME_ZONE = env.str("TIME_ZONE", default="America/Costa_Rica")
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Email: the local mail catcher (maildump on 127.0.0.1:1025) unless EMAIL_URL says otherwise.
# Django 6.1's MAILERS replaces the EMAIL_HOST family of settings.
_email = env.email_url("EMAIL_URL", default="smtp://127.0.0.1:1025")
_mail_options: dict[str, Any] = {}
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _mail_options = {
        "host": _email["EMAIL_HOST"],
        "port": _email["EMAIL_PORT"],
        "username": _email["EMAIL_HOST_USER"],
        "password": _email["EMAIL_HOST_PASSWORD"],
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        # A stalled server must not hold a worker for ever.
        "timeout": env.int("EMAIL_TIMEOUT", default=30),
    }
elif _email.get("EMAIL_FILE_PATH"):
    _mail_options = {"file_path": _email["EMAIL_FILE_PATH"]}
MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _mail_options}}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="FinanzaPro <facturas@finanzapro.local>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# Celery: Redis in production and tests, kombu's filesystem transport under var/ in development.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL if DJANGO_ENV != "development" else "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
    }
else:
    # Longer than any countdown the mailer schedules, so Redis never redelivers early.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200)}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Two messages per pool process: while a process runs one task, the worker holds its next one,
# handed over as soon as the task ends (the fair scheduler gives a message only to a free
# process). With one, the ack of a task had to reach Redis before the next message was fetched,
# and a process waited for that at every task: make bench, bursts of 1,000 invoices, three
# rounds each way, the cores were 94.9% busy against 94.0%. A message held by a worker that is
# killed waits for the sweeper, as the one it runs does (acks late).
CELERY_WORKER_PREFETCH_MULTIPLIER = 2
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_TIMEZONE = TIME_ZONE
# Workers recycle their process before WeasyPrint's memory grows: after this many tasks, or
# once a task leaves the process above this many kilobytes of resident memory. The renderer
# keeps a process's memory level (make bench: under 1 KB per render, and a pool process's
# memory grew 1.8-3 KB per invoice emailed, some 20-30 MB over 10,000 tasks), while a new
# process costs about ten renders of CPU (its warm-up and first, cold renders). At 1,000
# tasks that was 1% of a busy worker's CPU (two replacements in a burst of 2,000 invoices);
# at 10,000 it is 0.1%, and the memory limit stays the guard.
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=10_000)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=300_000)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # PostgreSQL, not Redis, is the source of truth for invoice emails: this finds the
    # deliveries whose task message was lost or whose worker died, and queues them again.
    "mailer-sweep-stuck-deliveries": {
        "task": "mailer.sweep_stuck_deliveries",
        "schedule": 60.0,
        # Sweeps that piled up while no worker ran are worthless: the next one does it all.
        "options": {"expires": 55},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Invoice emails (mailer/services.py). A try that the server or the network turns away for
# now is retried after MAILER_RETRY_BASE_SECONDS, doubling each time (with jitter) up to
# MAILER_RETRY_MAX_DELAY_SECONDS, until MAILER_RETRY_WINDOW_SECONDS after the first try.
MAILER_RETRY_BASE_SECONDS = env.float("MAILER_RETRY_BASE_SECONDS", default=30.0)
MAILER_RETRY_MAX_DELAY_SECONDS = env.float("MAILER_RETRY_MAX_DELAY_SECONDS", default=3600.0)
MAILER_RETRY_WINDOW_SECONDS = env.float("MAILER_RETRY_WINDOW_SECONDS", default=24 * 3600.0)
# A Celery worker process keeps its SMTP connection open between emails, for at most this long
# without one (0: a new connection for every email). See mailer/backends.py.
MAILER_SMTP_KEEP_OPEN_SECONDS = env.float("MAILER_SMTP_KEEP_OPEN_SECONDS", default=30.0)
# The sweeper queues again a delivery whose due time passed this long ago (its task message
# was lost), and takes back one "sending" for this long (its worker died): longer than the
# hard time limit, so a task still running is never taken from under its worker.
MAILER_SWEEP_QUEUED_AFTER_SECONDS = env.float("MAILER_SWEEP_QUEUED_AFTER_SECONDS", default=120.0)
MAILER_SWEEP_SENDING_AFTER_SECONDS = env.float(
    "MAILER_SWEEP_SENDING_AFTER_SECONDS", default=CELERY_TASK_TIME_LIMIT + 60.0
)
if MAILER_SWEEP_SENDING_AFTER_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("MAILER_SWEEP_SENDING_AFTER_SECONDS must be longer than CELERY_TASK_TIME_LIMIT.")
_visibility_timeout = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
if _visibility_timeout is not None and _visibility_timeout <= MAILER_RETRY_MAX_DELAY_SECONDS:
    # Redis hands a task that waits for its countdown to another worker once this timeout
    # passes; the mailer never schedules a countdown longer than MAILER_RETRY_MAX_DELAY_SECONDS.
    raise ImproperlyConfigured("MAILER_RETRY_MAX_DELAY_SECONDS must be shorter than CELERY_VISIBILITY_TIMEOUT.")

FLOWER_URL = env.str("FLOWER_URL", default="http://127.0.0.1:5555")

# The POS API (invoices/api/): terminals send "Authorization: Token <key>"; people who are
# signed in use the browsable API with their session.
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
    "DEFAULT_PAGINATION_CLASS": "invoices.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FinanzaPro POS API",
    "DESCRIPTION": (
        "Customers and invoices for point-of-sale terminals. Authenticate with "
        "`Authorization: Token <key>`; support staff create a user's token in the admin."
    ),
    "VERSION": "1.0.0",
    # OpenAPI 3.1: its schemas are plain JSON Schema, so clients (and our tests) validate with any validator.
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc come from drf-spectacular-sidecar's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Security: strict in production so that `manage.py check --deploy` is clean.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # WeasyPrint logs every CSS property it ignores; only warnings matter.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
