"""Django settings. Every value comes from the environment via project.config."""

from __future__ import annotations

import os
from pathlib import Path

from django.utils.csp import CSP

from project.config import Config, database_settings
from project.redis_connect import broker_settings
from project.tokenizer_files import use_bundled_tiktoken_files

BASE_DIR = Path(__file__).resolve().parent.parent
CONFIG = Config.from_environ(os.environ)
use_bundled_tiktoken_files()

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = CONFIG.allowed_hosts
CSRF_TRUSTED_ORIGINS = CONFIG.csrf_trusted_origins
SITE_URL = CONFIG.site_url
SANDBOX_URL = CONFIG.sandbox_url
FIELD_ENCRYPTION_KEYS = CONFIG.encryption_keys
REDIS_URL = CONFIG.redis_url
PROVIDER_TEST_TIMEOUT_SECONDS = 10.0
OUTBOUND_ALLOWED_HOSTS = CONFIG.outbound_allowed_hosts
# Error pages and reports (debug or not) hide secrets: see project/error_reports.py.
DEFAULT_EXCEPTION_REPORTER_FILTER = "project.error_reports.SecretHidingFilter"
DEFAULT_EXCEPTION_REPORTER = "project.error_reports.SecretHidingReporter"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "axes",
    "project.teams",
    "project.providers",
    "project.files",
    "project.webhooks",
    "project.notifications",
    "project.spend",
    # Features: each its own app; the platform above imports none of them.
    "assistants_app",
    "jobs_app",  # only the migration history of the tables made before the split below
    "jobs_app.batches",
    "jobs_app.finetune",
    "evals_app",
    "search_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before the sync-only CurrentTeamMiddleware, so under ASGI it runs in the same mode
    # as its neighbours instead of costing a thread hop per request.
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "project.teams.middleware.CurrentTeamMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

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
                "django.template.context_processors.csp",
                "project.teams.context_processors.current_team",
            ],
        },
    },
]

# Under ASGI each request may run its sync part on a different thread, so persistent
# per-thread connections pile up unused; a per-process pool (psycopg_pool) reuses
# them instead. Connections go back to the pool at the end of every request and task.
DATABASES = {"default": database_settings(CONFIG.database_url, pool_size=CONFIG.database_pool_size)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Requests of one web process in their synchronous part (middleware, a sync view) at once;
# the rest wait their turn without a thread or a connection (project/asgi_handler.py). The
# two connections of the pool left serve the event streams' reads.
WEB_SYNC_REQUESTS = max(1, CONFIG.database_pool_size - 2)

# A Redis outage makes the cache a miss, not a 500 (project/cache.py); short timeouts so
# an unreachable Redis host costs a page a second at most.
CACHES = {
    "default": {
        # Django's RedisCache, with one client per process instead of one per request.
        "BACKEND": "project.cache.SharedRedisCache",
        "LOCATION": CONFIG.redis_url,
        "KEY_PREFIX": "sb",
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 2.0},
    }
}
# Sessions are read from Redis on every request and kept in PostgreSQL, so a flushed
# cache, or Redis down, logs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
# account, or from one address, that account or address waits AXES_COOLOFF_TIME hours.
# The login page says so (project/teams/views.py: login_locked_out). Behind a proxy,
# the server must set REMOTE_ADDR from X-Forwarded-For (uvicorn --forwarded-allow-ips).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 1
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "project.teams.views.login_locked_out"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / ".data" / "media"))

# File library limits (project/files). 512 MB is the provider's limit per file; above
# FILES_SINGLE_UPLOAD_MAX_BYTES a file goes through the Uploads API in parts of FILES_PART_BYTES.
FILES_MAX_BYTES = 512 * 1024 * 1024
FILES_SINGLE_UPLOAD_MAX_BYTES = 64 * 1024 * 1024
FILES_PART_BYTES = 64 * 1024 * 1024
FILES_PART_ATTEMPTS = 3
FILES_PAGE_SIZE = 25
# A browser upload is spooled to disk by Django past this size, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Security. Production defaults are the safe ones; DEBUG relaxes only cookies over HTTP.
SESSION_COOKIE_SECURE = CONFIG.secure_cookies
CSRF_COOKIE_SECURE = CONFIG.secure_cookies
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = CONFIG.secure_cookies and not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 0 if DEBUG else 60 * 60 * 24 * 30
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# No inline script runs without the per-request nonce; htmx's own indicator
# styles are switched off (see base.html) so no inline style is needed either.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

_SMTP_OPTIONS = {
    "host": CONFIG.email_host,
    "port": CONFIG.email_port,
    "username": CONFIG.email_host_user,
    "password": CONFIG.email_host_password,
    "use_tls": CONFIG.email_use_tls,
}
MAILERS = {
    "default": {
        "BACKEND": CONFIG.email_backend,
        "OPTIONS": _SMTP_OPTIONS if CONFIG.email_backend.endswith("smtp.EmailBackend") else {},
    }
}
DEFAULT_FROM_EMAIL = CONFIG.default_from_email

# Celery: JSON only, bounded tasks, the schedule lives in project/celery.py.
CELERY_BROKER_URL = CONFIG.broker_url
# No result backend: nothing reads task results (every task's outcome lives in our own
# tables), and with one the sender subscribed to a Redis channel per task sent, a third
# of the time of posting a chat message.
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Through Sentinel, kombu needs the master's name (project/redis_connect.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60, **broker_settings(CONFIG.redis_url)[1]}
CELERY_TIMEZONE = "UTC"
# Two queues: "io" for calls that mostly wait on a provider (a thread-pool worker),
# "cpu" for parsing and validation (a process-per-core worker). Tasks name theirs.
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = ("project.celery.route_by_workload",)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}
