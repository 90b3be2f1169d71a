"""Invoices rendered to PDF with WeasyPrint (interface; the implementation is being written).

``render_invoice_pdf`` renders a saved invoice with a report format; ``render_sample_pdf``
renders a made-up invoice of a store, for previews and for checking a format on save. Both
raise ``ReportRenderError`` with a reason in plain words when the format cannot render.
"""

from accounts.models import User  # noqa: F401 - kept for the implementation
from invoices.models import Invoice, ReportFormat
from stores.models import Store

DEFAULT_FORMAT_CODE = "invoice-letter"


class ReportRenderError(Exception):
    """A format that cannot render; ``str(error)`` says why in plain words."""


def report_format_for_print(store: Store) -> ReportFormat:
    """The store's print report, else the default full-page invoice."""
    raise NotImplementedError


def report_format_for_email(store: Store) -> ReportFormat:
    """The email override when set and active, else the print report, else the default."""
    raise NotImplementedError


def render_invoice_pdf(*, invoice: Invoice, report_format: ReportFormat) -> bytes:
    raise NotImplementedError


def render_sample_pdf(*, store: Store, report_format: ReportFormat, language: str = "es") -> bytes:
    raise NotImplementedError
