import logging
from typing import Any

from celery.signals import worker_process_init
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("invoices.reports")


def warm_up_reports(**kwargs: Any) -> None:
    """Each Celery worker process builds its PDF fonts and stylesheets before its first task
    (prefork children only: the parent never renders, and what it built would not survive the fork)."""
    from invoices.reports import warm_up  # imports models: not before the app registry is ready

    try:
        warm_up()
    except Exception:
        # Only a head start: the first render builds whatever is missing.
        logger.warning("Report warm-up failed", exc_info=True)


class InvoicesConfig(AppConfig):
    name = "invoices"
    verbose_name = _("Invoicing")

    def ready(self) -> None:
        worker_process_init.connect(warm_up_reports, dispatch_uid="invoices.warm_up_reports")
