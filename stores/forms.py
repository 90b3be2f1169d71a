from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import User
from finanzapro.email_addresses import SingleEmailFormField
from invoices.models import ReportFormat
from invoices.reports import MAX_IMAGE_BYTES, ReportRenderError, render_sample_pdf
from stores.models import Store


@dataclass(frozen=True)
class Tab:
    slug: str
    label: str | Promise
    fields: list[forms.BoundField]
    advanced: list[forms.BoundField]

    @property
    def has_errors(self) -> bool:
        return any(field.errors for field in self.fields) or self.advanced_has_errors

    @property
    def advanced_has_errors(self) -> bool:
        return any(field.errors for field in self.advanced)


GENERAL_FIELDS = ["name", "legal_id", "address", "phone", "email", "logo", "currency"]
PRINT_FIELDS = ["print_report"]
EMAIL_FIELDS = ["email_enabled", "reply_to", "copy_to"]
EMAIL_ADVANCED_FIELDS = ["notify_applying_user", "failure_contacts", "email_report"]


class StoreForm(forms.ModelForm[Store]):
    """Every tab of the store's Edit page in one form, saved by one button.

    ``email_report`` is shown to everyone but only support may change it: for anybody else
    the field is disabled, so Django ignores a posted value and keeps the stored one.
    """

    email = SingleEmailFormField(label=_("email"), required=False)
    reply_to = SingleEmailFormField(
        label=_("Reply-to address"),
        required=False,
        help_text=Store._meta.get_field("reply_to").help_text,
    )

    class Meta:
        model = Store
        fields = [*GENERAL_FIELDS, *PRINT_FIELDS, *EMAIL_FIELDS, *EMAIL_ADVANCED_FIELDS]
        widgets = {
            "address": forms.Textarea(attrs={"rows": 3}),
            "logo": forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg"}),
        }

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        store = self.instance
        current_ids = [pk for pk in (store.print_report_id, store.email_report_id) if pk]
        usable = ReportFormat.objects.filter(is_active=True) | ReportFormat.objects.filter(pk__in=current_ids)
        print_report = cast(forms.ModelChoiceField[ReportFormat], self.fields["print_report"])
        print_report.queryset = usable.distinct()
        print_report.empty_label = _("Full-page invoice (Letter), the default")

        email_report = cast(forms.ModelChoiceField[ReportFormat], self.fields["email_report"])
        email_report.empty_label = _("Same as the print report (recommended)")
        if user.is_support:
            # A format support has switched off cannot be chosen again, only kept.
            email_report.queryset = usable.distinct()
        else:
            email_report.disabled = True
            email_report.queryset = ReportFormat.objects.all()
        if not store.reply_to and store.email:
            self.initial["reply_to"] = store.email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("email_enabled") and not cleaned.get("reply_to") and "reply_to" not in self.errors:
            self.add_error("reply_to", _("Enter the address that receives customer replies when sending is on."))
        return cleaned

    def clean_logo(self) -> Any:
        """A logo larger than the PDFs read would be left out of every invoice: refuse it here."""
        logo = self.cleaned_data.get("logo")
        size = getattr(logo, "size", None)
        if logo and "logo" in self.changed_data and size is not None and size > MAX_IMAGE_BYTES:
            raise forms.ValidationError(
                _("The logo is %(size)d KB; use an image of at most %(max)d KB."),
                code="logo_too_large",
                params={"size": size // 1024, "max": MAX_IMAGE_BYTES // 1024},
            )
        return logo

    def clean_email_report(self) -> ReportFormat | None:
        chosen: ReportFormat | None = self.cleaned_data.get("email_report")
        if self.fields["email_report"].disabled or chosen is None or chosen.pk == self.instance.email_report_id:
            return chosen
        if not chosen.is_active:
            raise forms.ValidationError(
                _("The format “%(format)s” is switched off; choose an active one."),
                code="inactive",
                params={"format": chosen},
            )
        # Every invoice email of the store will carry this format: prove it renders before it is saved.
        try:
            render_sample_pdf(store=self.instance, report_format=chosen)
        except ReportRenderError as exc:
            raise forms.ValidationError(
                _("The format “%(format)s” could not be generated: %(reason)s"),
                code="render_failed",
                params={"format": chosen, "reason": str(exc)},
            ) from exc
        return chosen

    def tabs(self) -> list[Tab]:
        def bound(names: list[str]) -> list[forms.BoundField]:
            return [self[name] for name in names]

        return [
            Tab("general", _("General"), bound(GENERAL_FIELDS), []),
            Tab("print", _("Printing"), bound(PRINT_FIELDS), []),
            Tab(
                "email",
                pgettext_lazy("store settings tab", "Send invoices by email"),
                bound(EMAIL_FIELDS),
                bound(EMAIL_ADVANCED_FIELDS),
            ),
        ]
