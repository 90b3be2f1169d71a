"""Settings are read from the environment: development needs nothing, production fails fast."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "x7#q9-production-secret-for-the-deploy-check-2f8d1c6b5a4e3d2c1b0a9f8e7d6c5b4a",
    "DATABASE_URL": "postgres://finanzapro:pw@db.internal:5432/finanzapro",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "facturas.example.com",
}


def environment(**env: str) -> dict[str, str]:
    """This process's environment without the project's settings (nor pytest's), plus ``env``."""
    own = ("DJANGO_", "DATABASE_", "CELERY_", "PYTEST_", "SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "EMAIL_")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(own)}, **env}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


SHOW_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"], "db_name": str(settings.DATABASES["default"]["NAME"]),
    "broker": settings.CELERY_BROKER_URL, "queue": settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", ""),
    "email": [settings.MAILERS["default"]["OPTIONS"][key] for key in ("host", "port")],
    "language": settings.LANGUAGE_CODE, "debug": settings.DEBUG,
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
}))
"""


def test_development_defaults_need_no_service() -> None:
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='finanzapro.settings'\n" + SHOW_SETTINGS,
        DJANGO_ENV="development",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["db"] == "django.db.backends.sqlite3"
    assert shown["db_name"] == str(PROJECT_DIR / "var" / "finanzapro.sqlite3")
    assert shown["broker"] == "filesystem://"
    assert shown["queue"].startswith(str(PROJECT_DIR / "var"))
    assert shown["email"] == ["127.0.0.1", 1025]
    assert shown["language"] == "es"
    assert shown["debug"] is True


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_a_required_variable(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='finanzapro.settings'\n" + SHOW_SETTINGS, **env
    )
    assert result.returncode != 0
    assert f"{missing} is required when DJANGO_ENV=production" in result.stderr


def test_production_refuses_a_broker_that_is_not_redis() -> None:
    env = {**PRODUCTION_ENV, "CELERY_BROKER_URL": "filesystem://"}
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='finanzapro.settings'\n" + SHOW_SETTINGS, **env
    )
    assert result.returncode != 0
    assert "CELERY_BROKER_URL must be a redis://" in result.stderr


def test_production_passes_the_deploy_check_without_a_warning() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=environment(**PRODUCTION_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # django_ratelimit.W001 is silenced in settings, with the reason.
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_tests_run_on_postgresql_and_redis() -> None:
    from django.conf import settings

    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


@pytest.mark.parametrize(("value", "prepared"), [(None, True), ("false", False)])
def test_postgresql_prepares_statements_unless_told_not_to(value: str | None, prepared: bool) -> None:
    env = {**PRODUCTION_ENV, **({"DATABASE_PREPARED_STATEMENTS": value} if value else {})}
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='finanzapro.settings'\n" + SHOW_SETTINGS, **env
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)["db_options"]
    assert (options.get("server_side_binding"), options.get("prepare_threshold")) == (
        (True, 5) if prepared else (None, None)
    )


@pytest.mark.django_db
def test_an_emails_read_of_its_delivery_is_planned_once_per_connection() -> None:
    from django.db import connection

    from mailer.services import deliveries_to_send

    for delivery_id in range(1, 8):  # as a worker reads one delivery after another
        deliveries_to_send().filter(pk=delivery_id).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert [s for s in prepared if '"invoices_customer"' in s and '"mailer_delivery"."id" = $1' in s], prepared
