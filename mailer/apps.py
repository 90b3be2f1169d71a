from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailerConfig(AppConfig):
    name = "mailer"
    verbose_name = _("Invoice emails")

    def ready(self) -> None:
        from invoices.models import Invoice
        from invoices.signals import invoice_applied
        from mailer.receivers import record_invoice_email

        invoice_applied.connect(record_invoice_email, sender=Invoice, dispatch_uid="mailer.record_invoice_email")
