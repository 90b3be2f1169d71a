import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finanzapro.settings")

app = Celery("finanzapro")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# this is set, so each task would open a new PostgreSQL connection (connect, authenticate, a
# server process forked, the time zone set) and pay for it in every invoice emailed. With it
# set beyond any process's lifetime (CELERY_WORKER_MAX_TASKS_PER_CHILD), the fixup leaves
# them be, and the handler below gives them the lifecycle of a web request instead.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task: Any = None, **kwargs: Any) -> None:
    """Around each task, as around each request: Django closes a connection that is older than
    CONN_MAX_AGE, broken or left mid-transaction, and checks a kept one (CONN_HEALTH_CHECKS)
    before its first query; so with CONN_MAX_AGE = 0 (development, tests) every task still
    gets a fresh connection, and in production a worker process keeps one for a minute.

    Not for a task run eagerly, inside its caller's request or transaction (as the fixup)."""
    from django.db import close_old_connections  # not before Django is set up

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


@app.task(name="finanzapro.ping")
def ping() -> str:
    """Answers "pong": lets health checks and tests see a worker consume from the broker."""
    return "pong"
