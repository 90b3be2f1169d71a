from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.money import format_money
from invoices.totals import LineInput, invoice_totals, line_amounts, round_money

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        (D("1.005"), "CRC", D("1.01")),
        (D("1.004"), "CRC", D("1.00")),
        (D("2.675"), "USD", D("2.68")),  # a float would give 2.67
        (D("-1.005"), "USD", D("-1.01")),
        (D("0"), "CRC", D("0.00")),
    ],
)
def test_money_rounds_half_up_to_the_minor_unit(amount: Decimal, currency: str, rounded: Decimal) -> None:
    assert round_money(amount, currency) == rounded
    assert round_money(amount, currency).as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("line", "currency", "expected"),
    [
        # quantity, unit price, discount %, tax %  ->  subtotal, discount, tax, total
        (("1", "1000", "0", "13"), "CRC", ("1000.00", "0.00", "130.00", "1130.00")),
        (("3", "333.33", "0", "13"), "CRC", ("999.99", "0.00", "130.00", "1129.99")),
        (("2", "1500", "10", "13"), "CRC", ("3000.00", "300.00", "351.00", "3051.00")),
        (("0.5", "19.99", "0", "0"), "USD", ("10.00", "0.00", "0.00", "10.00")),  # 9.995 rounds up
        (("1.25", "7.77", "15", "4"), "USD", ("9.71", "1.46", "0.33", "8.58")),
        (("1", "100", "100", "13"), "USD", ("100.00", "100.00", "0.00", "0.00")),
        (("7", "0.01", "0", "1"), "USD", ("0.07", "0.00", "0.00", "0.07")),
    ],
)
def test_line_amounts(line: tuple[str, ...], currency: str, expected: tuple[str, ...]) -> None:
    quantity, price, discount, tax = (D(value) for value in line)
    amounts = line_amounts(LineInput(quantity, price, discount, tax), currency)
    assert (amounts.subtotal, amounts.discount, amounts.tax, amounts.total) == tuple(D(v) for v in expected)


def test_mixed_tax_rates_in_one_invoice() -> None:
    lines = [
        LineInput(D("2"), D("5000"), D("0"), D("13")),  # general IVA
        LineInput(D("1"), D("2500"), D("0"), D("1")),  # basic basket
        LineInput(D("3"), D("1200"), D("5"), D("4")),  # reduced rate
        LineInput(D("1"), D("800"), D("0"), D("0")),  # exempt
    ]
    totals = invoice_totals(lines, "CRC")
    assert totals.subtotal == D("16900.00")
    assert totals.discount == D("180.00")
    assert totals.tax == D("1300.00") + D("25.00") + D("136.80")
    assert totals.total == D("16900.00") - D("180.00") + D("1461.80")


def test_an_invoice_without_lines_totals_zero() -> None:
    totals = invoice_totals([], "USD")
    assert (totals.subtotal, totals.discount, totals.tax, totals.total) == (D("0.00"),) * 4


line_inputs = st.builds(
    LineInput,
    quantity=st.decimals(min_value=D("0.001"), max_value=D("99999"), places=3),
    unit_price=st.decimals(min_value=D("0"), max_value=D("9999999"), places=2),
    discount_percent=st.decimals(min_value=D("0"), max_value=D("100"), places=2),
    tax_rate=st.sampled_from([D("0"), D("1"), D("2"), D("4"), D("13")]),
)


@given(lines=st.lists(line_inputs, max_size=30), currency=st.sampled_from(["CRC", "USD"]))
def test_the_total_is_the_sum_of_the_line_totals(lines: list[LineInput], currency: str) -> None:
    totals = invoice_totals(lines, currency)
    assert totals.total == sum((line.total for line in totals.lines), D(0))
    assert totals.total == totals.subtotal - totals.discount + totals.tax
    for line in totals.lines:
        assert line.total == line.subtotal - line.discount + line.tax
        assert D(0) <= line.discount <= line.subtotal
        assert line.total >= 0
        assert line.total.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("amount", "currency", "language", "shown"),
    [
        (D("1234.5"), "CRC", "es", "₡1\xa0234,50"),
        (D("1234.5"), "CRC", "en", "₡1,234.50"),
        (D("1234567.89"), "USD", "es", "$1\xa0234\xa0567,89"),
        (D("-12.3"), "USD", "en", "-$12.30"),
        (D("0"), "CRC", "es", "₡0,00"),
    ],
)
def test_amounts_are_shown_in_the_users_locale(amount: Decimal, currency: str, language: str, shown: str) -> None:
    assert format_money(amount, currency, language) == shown
