import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finanzapro.settings")

app = Celery("finanzapro")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="finanzapro.ping")
def ping() -> str:
    """Answers "pong": lets health checks and tests see a worker consume from the broker."""
    return "pong"
