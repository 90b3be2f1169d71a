from django.contrib import admin

from invoices.models import Customer, ReportFormat


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
