"""Amounts as people read them, with Babel: ₡1 234,50 in Spanish, ₡1,234.50 in English."""

from decimal import Decimal

from babel.numbers import format_decimal
from django.utils.translation import get_language

# Costa Rican usage for both languages: the colón sign, and $ for dollars.
CURRENCY_SYMBOLS = {"CRC": "₡", "USD": "$"}
BABEL_LOCALES = {"es": "es_CR", "en": "en_US"}


def format_money(amount: Decimal, currency: str, language: str | None = None) -> str:
    locale = BABEL_LOCALES.get((language or get_language() or "es")[:2], "es_CR")
    digits = format_decimal(abs(amount), format="#,##0.00", locale=locale)
    sign = "-" if amount < 0 else ""
    return f"{sign}{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{digits}"
