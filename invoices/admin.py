from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import get_language_info, gettext_lazy
from django.utils.translation import gettext as _

from accounts.models import Business
from invoices.models import ApiIdempotencyKey, Customer, Invoice, InvoiceLine, ReportFormat
from invoices.reports import ReportRenderError, render_sample_pdf
from stores.models import Store

PREVIEW_LANGUAGES = ("es", "en")
REPORT_TEMPLATES_DIR = "reports/"


def sample_store() -> Store:
    """The made-up, unsaved store of the admin's previews and checks: no customer's data in them."""
    business = Business(name="Comercio de muestra", legal_id="3-101-000000")
    return Store(
        business=business,
        name="Tienda de muestra",
        legal_id="3-101-000000",
        address="San José, Costa Rica",
        phone="2222-2222",
        email="tienda@example.com",
        currency=Store.Currency.CRC,
    )


def report_template_problem(template_name: str) -> forms.ValidationError | None:
    """Why ``template_name`` cannot be a report's template, or None: it must be a template of the
    project under templates/reports/ that Django can load."""
    if not template_name.startswith(REPORT_TEMPLATES_DIR) or ".." in template_name.split("/"):
        return forms.ValidationError(
            _("Choose a template under templates/reports/, such as “reports/invoice_full_page.html”."),
            code="not_a_report_template",
        )
    try:
        get_template(template_name)
    except TemplateSyntaxError as exc:
        return forms.ValidationError(
            _("The template “%(template)s” has an error: %(reason)s"),
            code="template_syntax",
            params={"template": template_name, "reason": str(exc)},
        )
    except TemplateDoesNotExist:
        return forms.ValidationError(
            _("The template “%(template)s” does not exist."),
            code="template_missing",
            params={"template": template_name},
        )
    return None


class ReportFormatAdminForm(forms.ModelForm[ReportFormat]):
    """Refuses a format that cannot print: its template must load, and a sample invoice must
    render with the values as edited, before anything is saved."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        template_name = cleaned.get("template_name")
        if self.errors or not template_name:
            return cleaned  # an incomplete format is not tried
        problem = report_template_problem(template_name)
        if problem is not None:
            self.add_error("template_name", problem)
            return cleaned
        model_fields = {field.name for field in ReportFormat._meta.concrete_fields} - {"id"}
        candidate = ReportFormat(**{name: value for name, value in cleaned.items() if name in model_fields})
        try:
            render_sample_pdf(store=sample_store(), report_format=candidate)
        except ReportRenderError as exc:
            raise forms.ValidationError(
                _("A sample invoice could not be generated with the template “%(template)s”: %(reason)s"),
                code="render_failed",
                params={"template": template_name, "reason": str(exc)},
            ) from exc
        return cleaned


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "business", "legal_id", "send_invoices_by_email", "language", "is_walk_in"]
    list_filter = ["business", "send_invoices_by_email", "language"]
    list_select_related = ["business"]
    search_fields = ["name", "legal_id", "emails"]


@admin.register(ReportFormat)
class ReportFormatAdmin(admin.ModelAdmin[ReportFormat]):
    """Support's report formats, each with a preview of a sample invoice (in the list, and on the
    change page through templates/admin/invoices/reportformat/change_form.html)."""

    form = ReportFormatAdminForm
    list_display = ["code", "name_es", "name_en", "page_size", "is_active", "preview_links"]
    list_filter = ["is_active", "page_size"]
    search_fields = ["code", "name_es", "name_en"]

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "<path:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_preview",
        )
        return [preview, *super().get_urls()]

    @admin.display(description=gettext_lazy("Preview"))
    def preview_links(self, obj: ReportFormat) -> SafeString:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_preview", args=[obj.pk])
        return format_html_join(
            " · ",
            '<a href="{}?language={}" target="_blank" rel="noopener" hreflang="{}">{}</a>',
            ((url, code, code, get_language_info(code)["name_local"]) for code in PREVIEW_LANGUAGES),
        )

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A sample invoice of the made-up store rendered with the saved format, as a PDF."""
        report_format = self.get_object(request, unquote(object_id))
        if report_format is None or not self.has_view_permission(request, report_format):
            raise Http404
        language = request.GET.get("language", "")
        if language not in PREVIEW_LANGUAGES:
            language = PREVIEW_LANGUAGES[0]
        try:
            pdf = render_sample_pdf(store=sample_store(), report_format=report_format, language=language)
        except ReportRenderError as exc:
            message = _("The format “%(format)s” could not be generated: %(reason)s")
            self.message_user(request, message % {"format": report_format, "reason": exc}, messages.ERROR)
            return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", report_format.pk)
        headers = {"Content-Disposition": f'inline; filename="{report_format.code}-{language}.pdf"'}
        return HttpResponse(pdf, content_type="application/pdf", headers=headers)


class InvoiceLineInline(admin.TabularInline[InvoiceLine, Invoice]):
    model = InvoiceLine
    fields = ("position", "description", "quantity", "unit_price", "discount_percent", "tax_rate", "total")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin[Invoice]):
    """Support looks at invoices here; amounts and lines change only through the services,
    and an applied invoice not at all, so every field is read-only."""

    list_display = ["__str__", "store", "customer", "status", "total", "currency", "applied_at"]
    list_filter = ["status", "store__business", "currency"]
    list_select_related = ["store", "customer"]
    search_fields = ["number", "customer__name", "store__name"]
    date_hierarchy = "created_at"
    inlines = [InvoiceLineInline]
    readonly_fields = [
        "store",
        "customer",
        "currency",
        "number",
        "status",
        "notes",
        "subtotal",
        "discount_total",
        "tax_total",
        "total",
        "created_by",
        "created_at",
        "applied_by",
        "applied_at",
        "voided_by",
        "voided_at",
        "void_reason",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return obj is not None and obj.is_draft


@admin.register(ApiIdempotencyKey)
class ApiIdempotencyKeyAdmin(admin.ModelAdmin[ApiIdempotencyKey]):
    """What a POS terminal's retried POSTs were answered with; written only by the API. Deleting a
    row lets the same key be used again."""

    list_display = ["key", "user", "method", "path", "response_status", "created_at"]
    list_filter = ["method", "response_status"]
    list_select_related = ["user"]
    search_fields = ["key", "user__username", "path"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "user",
        "key",
        "method",
        "path",
        "request_fingerprint",
        "response_status",
        "response_body",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiIdempotencyKey | None = None) -> bool:
        return False
