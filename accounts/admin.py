from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User
from invoices.services import walk_in_customer_get


@admin.register(Business)
class BusinessAdmin(admin.ModelAdmin[Business]):
    list_display = ["name", "legal_id", "created_at"]
    search_fields = ["name", "legal_id"]

    def save_model(self, request: HttpRequest, obj: Business, form: ModelForm[Business], change: bool) -> None:
        super().save_model(request, obj, form, change)
        walk_in_customer_get(business=obj)  # every business has its cash customer


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    list_display = ["username", "email", "business", "role", "is_staff", "is_active"]
    list_filter = ["role", "is_staff", "is_active", "business"]
    list_select_related = ["business"]
    search_fields = ["username", "email", "first_name", "last_name", "business__name"]
    filter_horizontal = ["stores", "groups", "user_permissions"]
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        (_("Business and role"), {"fields": ("business", "role", "stores", "language")}),
    )
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        (_("Business and role"), {"fields": ("email", "business", "role", "language")}),
    )
