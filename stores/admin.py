from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from stores.models import Store, StoreEmailSettingsChange


class StoreEmailSettingsChangeInline(admin.TabularInline[StoreEmailSettingsChange, Store]):
    model = StoreEmailSettingsChange
    fields = ("changed_at", "changed_by", "field", "old_value", "new_value")
    readonly_fields = ("changed_at", "changed_by", "field", "old_value", "new_value")
    extra = 0
    can_delete = False
    ordering = ["-changed_at"]
    verbose_name_plural = _("History of email settings changes")

    def has_add_permission(self, request: HttpRequest, obj: Store | None = None) -> bool:
        return False


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin[Store]):
    list_display = ["name", "business", "legal_id", "currency", "email_enabled", "print_report", "email_report"]
    list_filter = ["business", "currency", "email_enabled", "email_report"]
    list_select_related = ["business", "print_report", "email_report"]
    search_fields = ["name", "legal_id", "business__name", "email", "reply_to"]
    autocomplete_fields = ["business"]
    fieldsets = (
        (None, {"fields": ("business", "name", "legal_id", "address", "phone", "email", "logo", "currency")}),
        (_("Printing"), {"fields": ("print_report",)}),
        (
            pgettext_lazy("store settings tab", "Send invoices by email"),
            {
                "fields": (
                    "email_enabled",
                    "reply_to",
                    "copy_to",
                    "notify_applying_user",
                    "failure_contacts",
                    "email_report",
                )
            },
        ),
    )
    inlines = [StoreEmailSettingsChangeInline]


@admin.register(StoreEmailSettingsChange)
class StoreEmailSettingsChangeAdmin(admin.ModelAdmin[StoreEmailSettingsChange]):
    list_display = ["changed_at", "store", "changed_by", "field", "old_value", "new_value"]
    list_filter = ["field", "store__business"]
    list_select_related = ["store", "changed_by"]
    search_fields = ["store__name", "changed_by__username"]
    date_hierarchy = "changed_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StoreEmailSettingsChange | None = None) -> bool:
        return False
