"""The one custom signal of the product.

``invoice_applied`` is sent by ``invoices.services.invoice_apply()`` inside its transaction,
with ``invoice`` and ``applied_by``, so that invoices never import the mailer: the mailer's
receiver records the email delivery in the same transaction and enqueues its task on commit.
"""

from django.dispatch import Signal

invoice_applied = Signal()
