from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.http import QueryDict
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from finanzapro.email_addresses import EmailListFormField
from invoices.models import Customer, CustomerQuerySet, Invoice, InvoiceLine
from invoices.services import LineData
from invoices.totals import InvoiceTotals, LineAmounts, LineInput, invoice_totals

LINES_PREFIX = "lines"
MAX_LINES = 200
DEFAULT_TAX_RATE = Decimal(13)  # Costa Rica's general VAT rate


def _decimal_input() -> forms.TextInput:
    # A text input: a number input would refuse the decimal comma people type in Costa Rica.
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})


def plain_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros (2.500 → 2.5, 13.00 → 13), for inputs people edit."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


class CustomerForm(forms.ModelForm[Customer]):
    """A customer's record; the walk-in customer keeps its name and is never emailed."""

    class Meta:
        model = Customer
        fields = ["name", "legal_id", "emails", "send_invoices_by_email", "language"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.is_walk_in:
            self.fields["name"].disabled = True
            self.fields["send_invoices_by_email"].disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("send_invoices_by_email") and not cleaned.get("emails") and not self.has_error("emails"):
            self.add_error("emails", _("Enter at least one address to send invoices by email."))
        return cleaned


class InvoiceForm(forms.Form):
    """The invoice's customer and notes. A name typed in the "new customer" fields wins over
    the chosen customer: that customer is created with the invoice."""

    customer = forms.ModelChoiceField(
        queryset=Customer.objects.none(), label=_("Customer"), required=False, empty_label=None
    )
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    new_customer_name = forms.CharField(label=_("Name"), max_length=200, required=False)
    new_customer_legal_id = forms.CharField(label=_("Legal id"), max_length=30, required=False)
    new_customer_emails = EmailListFormField(
        label=_("Email addresses"),
        required=False,
        help_text=Customer._meta.get_field("emails").help_text,
    )
    new_customer_send_by_email = forms.BooleanField(label=_("Send invoices by email"), required=False)

    # Where the errors of ``customer_create`` go.
    NEW_CUSTOMER_FIELDS = {
        "name": "new_customer_name",
        "legal_id": "new_customer_legal_id",
        "emails": "new_customer_emails",
        "send_invoices_by_email": "new_customer_send_by_email",
    }

    def __init__(self, *args: Any, customers: CustomerQuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField[Customer], self.fields["customer"]).queryset = customers

    @property
    def creates_customer(self) -> bool:
        return bool(self.cleaned_data.get("new_customer_name"))

    @property
    def new_customer_open(self) -> bool:
        """Whether the "new customer" block starts open: something was typed in it."""
        if not self.is_bound:
            return False
        fields = self.NEW_CUSTOMER_FIELDS.values()
        return any(self.data.get(name) for name in fields) or any(self.has_error(name) for name in fields)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("new_customer_name"):
            if cleaned.get("new_customer_send_by_email") and not cleaned.get("new_customer_emails"):
                self.add_error("new_customer_emails", _("Enter an address to send invoices by email."))
        elif not cleaned.get("customer") and not self.has_error("customer"):
            self.add_error("customer", _("Choose a customer or create a new one."))
        return cleaned


class LineForm(forms.Form):
    description = forms.CharField(label=_("Description"), max_length=300)
    quantity = forms.DecimalField(
        label=_("Quantity"),
        max_digits=12,
        decimal_places=3,
        min_value=Decimal("0.001"),
        initial=Decimal(1),
        localize=True,
        widget=_decimal_input(),
    )
    unit_price = forms.DecimalField(
        label=_("Unit price"),
        max_digits=14,
        decimal_places=2,
        min_value=Decimal(0),
        localize=True,
        widget=_decimal_input(),
    )
    discount_percent = forms.DecimalField(
        label=format_lazy("{} %", _("Discount")),
        max_digits=5,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(100),
        required=False,
        initial=Decimal(0),
        localize=True,
        widget=_decimal_input(),
    )
    tax_rate = forms.DecimalField(
        label=format_lazy("{} %", _("Tax")),
        max_digits=5,
        decimal_places=2,
        min_value=Decimal(0),
        max_value=Decimal(100),
        required=False,
        initial=DEFAULT_TAX_RATE,
        localize=True,
        widget=_decimal_input(),
    )

    def clean_discount_percent(self) -> Decimal:
        return cast(Decimal | None, self.cleaned_data.get("discount_percent")) or Decimal(0)

    def clean_tax_rate(self) -> Decimal:
        # A cleared rate means an exempt line, not the default rate.
        return cast(Decimal | None, self.cleaned_data.get("tax_rate")) or Decimal(0)

    @staticmethod
    def initial_for(line: InvoiceLine) -> dict[str, object]:
        return {
            "description": line.description,
            "quantity": plain_decimal(line.quantity),
            "unit_price": line.unit_price,
            "discount_percent": plain_decimal(line.discount_percent),
            "tax_rate": plain_decimal(line.tax_rate),
        }


@dataclass(frozen=True)
class LinePreview:
    number: int
    description: str
    amounts: LineAmounts | None  # None while the line cannot be computed yet


@dataclass(frozen=True)
class TotalsPreview:
    lines: list[LinePreview]
    totals: InvoiceTotals


class BaseLineFormSet(forms.BaseFormSet[LineForm]):
    """The invoice's lines. Rows left as they came (an untouched extra row) and rows marked
    for removal are not lines."""

    def _kept_values(self) -> list[tuple[str, Mapping[str, Any] | None]]:
        """(description, values) of every line, values None for a line with errors."""
        kept: list[tuple[str, Mapping[str, Any] | None]] = []
        for form in self.forms:
            if not self.is_bound:
                if form.initial:
                    kept.append((str(form.initial.get("description", "")), form.initial))
                continue
            valid = form.is_valid()
            if form.cleaned_data.get("DELETE"):
                continue
            if not valid:
                kept.append((str(form["description"].value() or ""), None))
            elif form.cleaned_data:
                kept.append((form.cleaned_data["description"], form.cleaned_data))
        return kept

    def line_data(self) -> list[LineData]:
        """The lines to save; call after ``is_valid()``."""
        return [
            LineData(
                description=values["description"],
                quantity=values["quantity"],
                unit_price=values["unit_price"],
                discount_percent=values["discount_percent"],
                tax_rate=values["tax_rate"],
            )
            for _description, values in self._kept_values()
            if values is not None
        ]

    def preview(self, currency: str) -> TotalsPreview:
        """The totals of the lines as typed so far, by ``invoice_totals``; lines with errors count as nothing."""
        kept = self._kept_values()
        inputs = [
            LineInput(values["quantity"], values["unit_price"], values["discount_percent"], values["tax_rate"])
            for _description, values in kept
            if values is not None
        ]
        totals = invoice_totals(inputs, currency)
        amounts = iter(totals.lines)
        lines = [
            LinePreview(number, description, next(amounts) if values is not None else None)
            for number, (description, values) in enumerate(kept, start=1)
        ]
        return TotalsPreview(lines=lines, totals=totals)


LineFormSet = cast(
    type[BaseLineFormSet],
    forms.formset_factory(
        LineForm, formset=BaseLineFormSet, extra=1, can_delete=True, max_num=MAX_LINES, validate_max=True
    ),
)


def with_blank_line(data: QueryDict) -> QueryDict:
    """``data`` with one more, untouched line: the "Add line" button without JavaScript."""
    data = data.copy()
    try:
        count = int(data.get(f"{LINES_PREFIX}-TOTAL_FORMS", ""))
    except ValueError:
        return data
    if not 0 <= count < MAX_LINES:
        return data
    for name, field in LineForm.base_fields.items():
        if field.initial is not None:
            data[f"{LINES_PREFIX}-{count}-{name}"] = str(field.initial)
    data[f"{LINES_PREFIX}-TOTAL_FORMS"] = str(count + 1)
    return data


class VoidForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


class InvoiceFilterForm(forms.Form):
    """The invoice list's filters; the store is chosen apart, it decides what the page is about."""

    DATE_FIELDS = [("created", _("Creation date")), ("applied", _("Application date"))]

    number = forms.IntegerField(label=_("Number"), required=False, min_value=1)
    customer = forms.CharField(label=_("Customer"), required=False, max_length=200)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *Invoice.Status.choices]
    )
    date_field = forms.ChoiceField(label=_("Dates by"), required=False, choices=DATE_FIELDS)
    date_from = forms.DateField(
        label=_("Date from"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label=_("Date to"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def filters(self) -> dict[str, Any]:
        """The valid filters, as ``invoice_list`` takes them; a wrong one is left out, not fatal."""
        self.is_valid()
        cleaned = self.cleaned_data
        return {
            "number": cleaned.get("number"),
            "customer": (cleaned.get("customer") or "").strip(),
            "status": cleaned.get("status") or "",
            "date_field": cleaned.get("date_field") or "created",
            "date_from": cleaned.get("date_from"),
            "date_to": cleaned.get("date_to"),
        }
