from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from accounts.models import Business
from finanzapro.email_addresses import EmailListFormField
from mailer.models import Delivery
from stores.models import Store

_DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class DeliveryFilterForm(forms.Form):
    """The Correos pages' filters. A store's page has no store or business filter; the
    business-wide page offers the user's stores, and support also chooses a business."""

    state = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *Delivery.State.choices]
    )
    customer = forms.CharField(label=_("Customer"), required=False, max_length=200)
    date_from = forms.DateField(label=_("Date from"), required=False, widget=_DATE_WIDGET)
    date_to = forms.DateField(label=_("Date to"), required=False, widget=_DATE_WIDGET)
    store = forms.ModelChoiceField(label=_("Store"), required=False, queryset=Store.objects.none(), empty_label=None)
    business = forms.ModelChoiceField(
        label=_("Business"), required=False, queryset=Business.objects.none(), empty_label=None
    )

    def __init__(
        self,
        data: Any = None,
        *,
        stores: QuerySet[Store] | None = None,
        businesses: QuerySet[Business] | None = None,
    ) -> None:
        super().__init__(data)
        store_field = cast(forms.ModelChoiceField[Store], self.fields["store"])
        business_field = cast(forms.ModelChoiceField[Business], self.fields["business"])
        if stores is None:
            del self.fields["store"]
        else:
            store_field.queryset = stores
            store_field.empty_label = _("All stores")
        if businesses is None:
            del self.fields["business"]
        else:
            business_field.queryset = businesses
            business_field.empty_label = _("All businesses")

    def filters(self) -> dict[str, Any]:
        """The valid filters, as ``delivery_list`` takes them; a wrong one is left out, not fatal."""
        self.is_valid()
        cleaned = self.cleaned_data
        business = cleaned.get("business")
        return {
            "state": cleaned.get("state") or "",
            "customer": (cleaned.get("customer") or "").strip(),
            "date_from": cleaned.get("date_from"),
            "date_to": cleaned.get("date_to"),
            "store": cleaned.get("store"),
            "business_id": business.pk if business is not None else None,
        }


class ResendForm(forms.Form):
    """The invoice panel's "Resend" form: blank sends to the customer's addresses."""

    to = EmailListFormField(
        label=_("Send to"),
        required=False,
        help_text=_("Leave it blank to use the customer's addresses. Separate several addresses with semicolons."),
    )
