"""``{% invoice_email_panel invoice %}``: the invoice page's email panel, rendered by the mailer.

The invoice page loads this library instead of its view importing the mailer: ``invoices``
knows nothing of emails, and the panel works without JavaScript (htmx only keeps it fresh).
"""

from django import template
from django.http import HttpRequest
from django.template.loader import render_to_string

from invoices.models import Invoice
from mailer.selectors import invoice_email_panel as panel_for
from mailer.views import panel_context

register = template.Library()


@register.simple_tag(takes_context=True)
def invoice_email_panel(context: template.Context, invoice: Invoice) -> str:
    request = context.get("request")
    if not isinstance(request, HttpRequest):
        return ""
    panel = panel_for(user=request.user, invoice_id=invoice.pk)
    if panel is None:
        return ""
    # Rendered HTML (a SafeString): the page includes it as it is.
    return render_to_string("mailer/invoice_email.html#panel", panel_context(panel), request=request)
