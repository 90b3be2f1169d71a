from django.contrib import admin
from django.http import HttpRequest

from invoices.models import ApiIdempotencyKey, Customer, Invoice, InvoiceLine, ReportFormat


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "business", "legal_id", "send_invoices_by_email", "language", "is_walk_in"]
    list_filter = ["business", "send_invoices_by_email", "language"]
    list_select_related = ["business"]
    search_fields = ["name", "legal_id", "emails"]


@admin.register(ReportFormat)
class ReportFormatAdmin(admin.ModelAdmin[ReportFormat]):
    list_display = ["code", "name_es", "name_en", "page_size", "is_active"]
    list_filter = ["is_active", "page_size"]
    search_fields = ["code", "name_es", "name_en"]


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
