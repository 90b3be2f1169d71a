"""The mailer's one receiver, connected in MailerConfig.ready()."""

from typing import Any

from accounts.models import User
from invoices.models import Invoice
from mailer.services import delivery_create


def record_invoice_email(sender: type[Invoice], *, invoice: Invoice, applied_by: User, **kwargs: Any) -> None:
    """On ``invoice_applied``, inside the applying transaction: record whether and to whom the
    invoice is emailed; the task is queued only if that transaction commits."""
    delivery_create(invoice=invoice, requested_by=applied_by)
