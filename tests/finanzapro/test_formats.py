from decimal import Decimal

from django.template import Context, Template
from django.utils import translation


def render(template: str, **context: object) -> str:
    return Template("{% load l10n %}" + template).render(Context(context))


def test_spanish_numbers_use_costa_rican_separators() -> None:
    with translation.override("es"):
        assert render("{{ amount|floatformat:'2g' }}", amount=Decimal("1234567.5")) == "1\xa0234\xa0567,50"


def test_english_numbers_use_comma_thousands_and_point_decimals() -> None:
    with translation.override("en"):
        assert render("{{ amount|floatformat:'2g' }}", amount=Decimal("1234567.5")) == "1,234,567.50"


def test_spanish_dates_are_day_month_year() -> None:
    import datetime

    with translation.override("es"):
        assert render("{{ day|date:'SHORT_DATE_FORMAT' }}", day=datetime.date(2026, 11, 27)) == "27/11/2026"
