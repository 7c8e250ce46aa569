"""AEGIS settings. Every deployment knob is an environment variable with a safe
development default; see README.md, section "Configuration"."""

from __future__ import annotations

import base64
import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from governance import __version__

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


DEBUG = env_bool("DEBUG", False)

# Only ever acceptable with DEBUG on: a production server must bring its own key.
DEVELOPMENT_SECRET_KEY = "django-insecure-aegis-development-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
# `makemigrations` only compares models with migrations: it serves nothing and signs
# nothing, so it may run without a key (e.g. a pre-commit check in a bare shell).
SCHEMA_TOOLING_ONLY = sys.argv[1:2] == ["makemigrations"]
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY and not SCHEMA_TOOLING_ONLY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: with DEBUG off AEGIS refuses to start on the development key. "
        "Set SECRET_KEY to a long random value (or DEBUG=1 for local development)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "governance",
    "calibration",
    "workflows",
    "notifications",
    "attestations",
    "ledger",
]

MIDDLEWARE = [
    "governance.api.middleware.RequestIdMiddleware",
    # Outside everything that can answer an error, so no API path ever answers an HTML one.
    "governance.api.errors.JsonErrorsOnApiPathsMiddleware",
    "governance.metrics.RequestMetricsMiddleware",
    "governance.api.request_guard.RequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Right after the HTTPS redirect: static files are answered before sessions or auth run.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "governance.api.errors.DecryptionErrorMiddleware",
    # Last, as django-axes requires: it turns a lockout flagged during sign-in into the answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aegis_site.urls"
WSGI_APPLICATION = "aegis_site.wsgi.application"
ASGI_APPLICATION = "aegis_site.asgi.application"

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
                "workflows.context_processors.audit_alert",
                "workflows.context_processors.waiting_count",
            ],
        },
    },
]

# The client does not follow redirects: API paths have no trailing slash and are never
# redirected (API.md, "Transport rules").
APPEND_SLASH = False

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
    # Each process keeps a pool of open connections (Django's native psycopg pool), so a
    # request does not pay for a new connection; persistent connections must then be off.
    # Size it to the threads of one process (gunicorn --threads, Celery concurrency).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 8),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on a lock, one at a time, instead of sleeping in SQLite's busy handler
    # (aegis_site/sqlite3/base.py). IMMEDIATE takes SQLite's write lock at BEGIN, so a
    # transaction never fails half-way with "database is locked". WAL lets readers work
    # while a writer commits, and makes each commit one append to the log.
    DATABASES["default"]["ENGINE"] = "aegis_site.sqlite3"
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20,
                                       "init_command": "PRAGMA journal_mode=WAL"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out user or address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
# `manage.py collectstatic` writes every file under a content-hashed name plus a gzip copy;
# whitenoise serves them with a far-future cache header. With DEBUG on, templates link the
# plain names and the files are found in the apps, so development needs no collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # for staff; workflows.home.SignInView sends anyone else to /workflows/
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Background jobs: without REDIS_URL every task runs eagerly in process, so the app needs
# no extra service; with it, Redis is broker and result backend.
REDIS_URL = os.environ.get("REDIS_URL", "")

# Per-minute throttling counts in the cache: Redis when REDIS_URL is set (shared by all
# processes), otherwise process memory (exact for a single-process server).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "aegis"}}

# Celery (aegis_site/celery.py). Tasks are idempotent and acknowledged late, so a worker
# killed mid-task loses nothing: the task is redelivered and finishes exactly once.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Redis redelivers an unacknowledged task after this many seconds (a killed worker's task).
# Workers look for such tasks every 10 s (unacked_restore_throttle 1; kombu's default only
# acts on every tenth look, so a dead worker's task could wait ~100 s more).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
                                   "unacked_restore_throttle": 1}
# Backups the daily task keeps in BACKUP_DIR.
AEGIS_BACKUP_KEEP = env_int("AEGIS_BACKUP_KEEP", 7)
# Chain verification (docs/operations.md, "Audit chain verification"): worker processes
# (1 = in-process) and whether the scheduled run re-hashes every checkpoint, not only the newest.
AEGIS_VERIFY_PROCESSES = env_int("AEGIS_VERIFY_PROCESSES", os.cpu_count() or 1)
AEGIS_VERIFY_FULL = env_bool("AEGIS_VERIFY_FULL", False)

# Notifications (README.md, "Notifications"). Email goes through Django's email framework:
# SMTP when EMAIL_HOST is set, otherwise printed to the server's output (the console backend,
# for development; `check --deploy` warns about it). EMAIL_BACKEND, a dotted path, overrides both.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS (STARTTLS, usually port 587) and EMAIL_USE_SSL (implicit TLS, usually "
                               "port 465) exclude each other: set one of them")
# Seconds an SMTP connection or a webhook POST may take before the delivery counts as failed.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "AEGIS <aegis@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The address people reach AEGIS at: links in emails and webhooks are built on it.
AEGIS_PUBLIC_URL = (os.environ.get("AEGIS_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
# Each event is also POSTed as JSON here, signed with AEGIS_WEBHOOK_SECRET (X-AEGIS-Signature).
AEGIS_WEBHOOK_URL = os.environ.get("AEGIS_WEBHOOK_URL", "")
AEGIS_WEBHOOK_SECRET = os.environ.get("AEGIS_WEBHOOK_SECRET", "")
AEGIS_WEBHOOK_TIMEOUT = env_int("AEGIS_WEBHOOK_TIMEOUT", 5)
for _name, _url in (("AEGIS_PUBLIC_URL", AEGIS_PUBLIC_URL), ("AEGIS_WEBHOOK_URL", AEGIS_WEBHOOK_URL)):
    if _url and not _url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{_name} must be an http:// or https:// URL, got {_url!r}")
if AEGIS_WEBHOOK_URL and not AEGIS_WEBHOOK_SECRET:
    raise ImproperlyConfigured("AEGIS_WEBHOOK_URL is set but AEGIS_WEBHOOK_SECRET is not: AEGIS signs every webhook "
                               "(X-AEGIS-Signature); set AEGIS_WEBHOOK_SECRET to a long random value the receiver "
                               "also knows")
if EMAIL_TIMEOUT < 1 or AEGIS_WEBHOOK_TIMEOUT < 1:
    raise ImproperlyConfigured(f"EMAIL_TIMEOUT and AEGIS_WEBHOOK_TIMEOUT must be at least 1 second, got "
                               f"{EMAIL_TIMEOUT} and {AEGIS_WEBHOOK_TIMEOUT}")

# Attestations (POST /attest). Hours an attestation may live per risk class: a request
# whose expires_at lies further ahead is refused (never clipped). No class above 24 hours.
AEGIS_ATTESTATION_TTL_HOURS = {risk_class: env_int(f"AEGIS_ATTESTATION_TTL_HOURS_{risk_class.upper()}", default)
                               for risk_class, default in (("low", 24), ("medium", 24), ("high", 4),
                                                           ("critical", 4))}
for _risk_class, _hours in AEGIS_ATTESTATION_TTL_HOURS.items():
    if not 1 <= _hours <= 24:
        raise ImproperlyConfigured(f"AEGIS_ATTESTATION_TTL_HOURS_{_risk_class.upper()} must be from 1 to 24 hours, "
                                   f"got {_hours}")
# With it on, every attestation must name the proceed decision it ships (aegis_evaluate_decision_id).
AEGIS_ATTEST_REQUIRE_DECISION = env_bool("AEGIS_ATTEST_REQUIRE_DECISION", False)
# A signing pair from the environment (base64 of each 32-byte private seed, as
# `manage.py aegis_attestation_keys generate --print-env` prints them) wins over the stored ones.
AEGIS_ATTESTATION_ED25519_SEED = os.environ.get("AEGIS_ATTESTATION_ED25519_SEED", "")
AEGIS_ATTESTATION_MLDSA65_SEED = os.environ.get("AEGIS_ATTESTATION_MLDSA65_SEED", "")
if bool(AEGIS_ATTESTATION_ED25519_SEED) != bool(AEGIS_ATTESTATION_MLDSA65_SEED):
    raise ImproperlyConfigured("Set both AEGIS_ATTESTATION_ED25519_SEED and AEGIS_ATTESTATION_MLDSA65_SEED (an "
                               "attestation carries both signatures), or neither")
for _name in ("AEGIS_ATTESTATION_ED25519_SEED", "AEGIS_ATTESTATION_MLDSA65_SEED"):
    if globals()[_name]:
        try:
            _seed = base64.b64decode(globals()[_name], validate=True)
        except ValueError:
            _seed = b""
        if len(_seed) != 32:
            raise ImproperlyConfigured(f"{_name} must be the base64 of a 32-byte private seed (44 characters)")

# Unauthenticated /sandbox/evaluate calls allowed per client IP and UTC day.
SANDBOX_DAILY_LIMIT = env_int("SANDBOX_DAILY_LIMIT", 10)
# Reported as `stage` by /health.
AEGIS_STAGE = os.environ.get("AEGIS_STAGE", "self-hosted")
# An Idempotency-Key whose first request has run this long without finishing is taken
# over by a retry (its process is presumed dead).
AEGIS_IDEMPOTENCY_STALE_SECONDS = env_int("AEGIS_IDEMPOTENCY_STALE_SECONDS", 120)

# A valid API key is remembered in each process this long (seconds, 0 to 5): a revoked key
# stops working on every worker within this time (governance/api/auth.py).
AEGIS_API_KEY_CACHE_SECONDS = env_int("AEGIS_API_KEY_CACHE_SECONDS", 2)
if not 0 <= AEGIS_API_KEY_CACHE_SECONDS <= 5:
    raise ImproperlyConfigured(f"AEGIS_API_KEY_CACHE_SECONDS must be from 0 to 5, got {AEGIS_API_KEY_CACHE_SECONDS}")

# Each process remembers which configuration version is active this long (seconds): a
# version applied in one process is used by every other within this time.
AEGIS_CONFIG_CACHE_SECONDS = env_int("AEGIS_CONFIG_CACHE_SECONDS", 1)

# Override requests expire this many hours after they are made (PLATFORM.md §4).
AEGIS_OVERRIDE_EXPIRY_HOURS = env_int("AEGIS_OVERRIDE_EXPIRY_HOURS", 24)

# /metrics: open to loopback clients; with a token, to anyone presenting it as a bearer token.
AEGIS_METRICS_TOKEN = os.environ.get("AEGIS_METRICS_TOKEN", "")

# Hostile input (docs/decisions.md): a request body over this many bytes is refused with 413
# before it is read (8 MiB: both drift arrays of an /evaluate body full, 100,000 values each
# at full float precision, fit with room to spare); Django's own limit on form data is the
# same. JSON bodies may nest arrays and objects at most AEGIS_JSON_MAX_DEPTH levels.
AEGIS_MAX_BODY_BYTES = env_int("AEGIS_MAX_BODY_BYTES", 8 * 1024 * 1024)
AEGIS_JSON_MAX_DEPTH = env_int("AEGIS_JSON_MAX_DEPTH", 32)
if AEGIS_MAX_BODY_BYTES < 1 or AEGIS_JSON_MAX_DEPTH < 2:
    raise ImproperlyConfigured("AEGIS_MAX_BODY_BYTES must be at least 1 and AEGIS_JSON_MAX_DEPTH at least 2 "
                               f"(a body with metadata), got {AEGIS_MAX_BODY_BYTES} and {AEGIS_JSON_MAX_DEPTH}")
DATA_UPLOAD_MAX_MEMORY_SIZE = AEGIS_MAX_BODY_BYTES

# Backups written by `aegis_backup` and the daily task.
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR") or BASE_DIR / "backups")

# The ledger's anchors (docs/operations.md, "The ledger and its anchors"): the key MACing the
# anchor file and every backup's manifest, which must not live in the database (unset: no
# anchor, unauthenticated backups, and `check --deploy` warns), and where the anchor is kept.
AEGIS_ANCHOR_KEY = os.environ.get("AEGIS_ANCHOR_KEY", "")
AEGIS_ANCHOR_DIR = Path(os.environ.get("AEGIS_ANCHOR_DIR") or BASE_DIR / "anchors")

# Failed sign-ins (admin, /accounts/login/, HTTP Basic on /api/) are limited by django-axes:
# AXES_FAILURE_LIMIT failures for one username, or from one client address, lock it out until
# AXES_COOLOFF_MINUTES have passed since the last failure (0: until an administrator unlocks).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
_axes_cooloff_minutes = env_int("AXES_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured(f"AXES_FAILURE_LIMIT must be at least 1, got {AXES_FAILURE_LIMIT}")
if _axes_cooloff_minutes < 0:
    raise ImproperlyConfigured(f"AXES_COOLOFF_MINUTES must be 0 (no expiry) or more, got {_axes_cooloff_minutes}")
AXES_COOLOFF_TIME = timedelta(minutes=_axes_cooloff_minutes) if _axes_cooloff_minutes else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: per user, and per address
AXES_LOCKOUT_CALLABLE = "governance.login_protection.lockout_response"
AXES_CLIENT_IP_CALLABLE = "governance.login_protection.client_address"
# A successful sign-in does not wipe the failures: it would also wipe the address's count,
# so anyone holding one account could keep guessing another's password.
AXES_RESET_ON_SUCCESS = False
# Only failures are kept (and only until they expire): no table of everyone's sign-ins.
AXES_DISABLE_ACCESS_LOG = True
# Reverse proxies in front that append the client address to X-Forwarded-For (nginx:
# `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`). 0: the TCP peer is the client.
AEGIS_TRUSTED_PROXY_COUNT = env_int("AEGIS_TRUSTED_PROXY_COUNT", 0)

# Fernet keys for PII at rest: comma-separated; the first encrypts, all decrypt.
FERNET_KEYS = env_list("FERNET_KEYS", "") or [SECRET_KEY]

# Production hardening: on by default whenever DEBUG is off (`manage.py check --deploy`
# is clean); each can be turned off explicitly, e.g. behind a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# Load balancers probe /health over plain HTTP (the regex is matched without the leading slash).
SECURE_REDIRECT_EXEMPT = [r"^health$"]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "governance.api.auth.ApiKeyAuthentication",
    ],
    "EXCEPTION_HANDLER": "governance.api.errors.exception_handler",
    # JSON only, with the limits of docs/decisions.md "Hostile input", on every API view.
    "DEFAULT_PARSER_CLASSES": ["governance.api.parsers.JSONBodyParser"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AEGIS API",
    "DESCRIPTION": "Self-hosted AEGIS governance service.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # stderr: what gunicorn, systemd and containers collect.
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {
        "aegis": {"handlers": ["console"], "level": os.environ.get("AEGIS_LOG_LEVEL", "INFO")},
        # Lockouts and repeated failures (axes masks the username and address in these lines).
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
