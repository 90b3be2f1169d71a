"""Invoice emails in the admin, for support and ops: read only. What happened is history;
a new email is a new delivery (the resend button), never an edited one."""

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient, FailureNotice


class _ReadOnlyInline[M: Model](admin.TabularInline[M, Delivery]):
    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryRecipientInline(_ReadOnlyInline[DeliveryRecipient]):
    model = DeliveryRecipient
    fields = ["address", "role", "state", "smtp_code", "smtp_reply", "sent_at"]


class DeliveryAttemptInline(_ReadOnlyInline[DeliveryAttempt]):
    model = DeliveryAttempt
    fields = ["number", "started_at", "finished_at", "outcome", "smtp_code", "detail"]


class FailureNoticeInline(_ReadOnlyInline[FailureNotice]):
    model = FailureNotice
    fields = ["address", "state", "error", "created_at", "sent_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = ["created_at", "kind", "invoice", "store", "to", "state", "skip_reason", "attempt_count", "sent_at"]
    list_filter = ["state", "kind", "skip_reason", "failure_kind", "store__business", "store"]
    list_select_related = ["invoice", "store"]
    search_fields = ["=message_id", "to", "copies", "invoice__customer__name", "store__name"]
    date_hierarchy = "created_at"
    inlines = [DeliveryRecipientInline, DeliveryAttemptInline, FailureNoticeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Delivery | None = None) -> list[str]:
        return [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False
