"""Invoice arithmetic: every amount of an invoice is computed here, with Decimal, once.

Each line is rounded to the currency's minor unit step by step (gross, discount, tax) and
the invoice's amounts are the sums of its lines' rounded amounts, so the printed lines
always add up to the printed total.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

HUNDRED = Decimal(100)
# Minor units per currency: both the colón and the dollar are invoiced in hundredths.
CURRENCY_DECIMALS = {"CRC": 2, "USD": 2}


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to the currency's minor unit (₡1,005 → ₡1,01)."""
    step = Decimal(1).scaleb(-CURRENCY_DECIMALS[currency])
    return amount.quantize(step, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineInput:
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal = Decimal(0)
    tax_rate: Decimal = Decimal(0)


@dataclass(frozen=True)
class LineAmounts:
    subtotal: Decimal  # quantity * unit price
    discount: Decimal
    tax: Decimal  # on the discounted amount
    total: Decimal


@dataclass(frozen=True)
class InvoiceTotals:
    lines: list[LineAmounts]
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


def line_amounts(line: LineInput, currency: str) -> LineAmounts:
    subtotal = round_money(line.quantity * line.unit_price, currency)
    discount = round_money(subtotal * line.discount_percent / HUNDRED, currency)
    tax = round_money((subtotal - discount) * line.tax_rate / HUNDRED, currency)
    return LineAmounts(subtotal=subtotal, discount=discount, tax=tax, total=subtotal - discount + tax)


def invoice_totals(lines: Iterable[LineInput], currency: str) -> InvoiceTotals:
    amounts = [line_amounts(line, currency) for line in lines]
    zero = round_money(Decimal(0), currency)
    return InvoiceTotals(
        lines=amounts,
        subtotal=sum((a.subtotal for a in amounts), zero),
        discount=sum((a.discount for a in amounts), zero),
        tax=sum((a.tax for a in amounts), zero),
        total=sum((a.total for a in amounts), zero),
    )
