from decimal import Decimal

from django import template

from invoices.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """``{{ invoice.total|money:invoice.currency }}`` in the page's language."""
    if amount is None:
        return ""
    return format_money(Decimal(amount), currency)
