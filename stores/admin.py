from django.contrib import admin

from stores.models import Store


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin[Store]):
    list_display = ["name", "business", "legal_id", "currency"]
    list_filter = ["business", "currency"]
    list_select_related = ["business"]
    search_fields = ["name", "legal_id", "business__name"]
