"""Amounts as people read them, with Babel: ₡1 234,50 in Spanish, ₡1,234.50 in English."""

from decimal import Decimal
from functools import cache

from babel.core import Locale
from babel.numbers import NumberPattern, parse_pattern
from django.utils.translation import get_language

# Costa Rican usage for both languages: the colón sign, and $ for dollars.
CURRENCY_SYMBOLS = {"CRC": "₡", "USD": "$"}
BABEL_LOCALES = {"es": "es_CR", "en": "en_US"}
NUMBER_FORMAT = "#,##0.00"


@cache
def _number_format(locale: str) -> tuple[Locale, NumberPattern]:
    """The locale's data and the parsed number pattern, read once per process: what
    ``babel.numbers.format_decimal`` would read again for every amount (an invoice prints dozens)."""
    return Locale.parse(locale), parse_pattern(NUMBER_FORMAT)


def format_money(amount: Decimal, currency: str, language: str | None = None) -> str:
    locale, pattern = _number_format(BABEL_LOCALES.get((language or get_language() or "es")[:2], "es_CR"))
    digits = pattern.apply(abs(amount), locale)  # as format_decimal(abs(amount), NUMBER_FORMAT, locale)
    sign = "-" if amount < 0 else ""
    return f"{sign}{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{digits}"
