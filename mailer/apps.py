from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def keep_smtp_connections_open(**kwargs: Any) -> None:
    """Each Celery worker process keeps its SMTP connection from one email to the next."""
    from mailer.backends import keep_connections_open

    keep_connections_open()


def close_smtp_connections(**kwargs: Any) -> None:
    from mailer.backends import close_kept_connections

    close_kept_connections()


class MailerConfig(AppConfig):
    name = "mailer"
    verbose_name = _("Invoice emails")

    def ready(self) -> None:
        from invoices.models import Invoice
        from invoices.signals import invoice_applied
        from mailer.receivers import record_invoice_email

        invoice_applied.connect(record_invoice_email, sender=Invoice, dispatch_uid="mailer.record_invoice_email")
        worker_process_init.connect(keep_smtp_connections_open, dispatch_uid="mailer.keep_smtp_connections_open")
        worker_process_shutdown.connect(close_smtp_connections, dispatch_uid="mailer.close_smtp_connections")
