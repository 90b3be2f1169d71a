"""Where `make bench` runs: PostgreSQL and Redis, as in production, on databases of its own.

Import this module before anything of Django's. It points the settings at a bench database
(``BENCH_DATABASE_URL``, default ``finanzapro_bench`` on 127.0.0.1) and at Redis databases of
their own for the broker and the cache (``BENCH_REDIS_DB``, default 12, and the next one), so
a benchmark never touches the development data, the test database or a running worker's
queue. ``DEBUG`` is off, as in production. Subprocesses started by the benchmark (a Celery
worker) inherit the same environment.
"""

import os
import subprocess
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/finanzapro_bench")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1:6379")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "12"))


def environment() -> dict[str, str]:
    """The settings' environment variables for the benchmark (and its subprocesses)."""
    return {
        "DJANGO_SETTINGS_MODULE": "finanzapro.settings",
        "DJANGO_ENV": "development",
        "DEBUG": "false",
        "DATABASE_URL": DATABASE_URL,
        "CONN_MAX_AGE": "60",
        "REDIS_URL": f"redis://{REDIS_HOST}/{REDIS_DB}",
        "CELERY_BROKER_URL": f"redis://{REDIS_HOST}/{REDIS_DB}",
        "CACHE_URL": f"rediscache://{REDIS_HOST}/{REDIS_DB + 1}",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }


os.environ.update(environment())
os.environ.pop("PYTEST_VERSION", None)


def ensure_database() -> None:
    """Creates or migrates the bench database when it is missing or behind (checked in this
    process: quicker than running ``migrate`` when there is nothing to do)."""
    from django.db import DatabaseError, connection, connections
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        behind = bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except DatabaseError:
        behind = True
    if behind:
        connections.close_all()
        create_database()


def create_database() -> None:
    """Create the bench database if it does not exist, and bring its schema up to date."""
    import psycopg
    from django.conf import settings
    from psycopg import sql

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"], "dbname": "postgres"}
    if db["PASSWORD"]:
        params["password"] = db["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
    subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"], check=True, cwd=ROOT
    )


django.setup()
