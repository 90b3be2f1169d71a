from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from accounts.models import Business, User
from stores.models import Store, StoreEmailSettingsChange, StoreQuerySet


def store_list(*, user: User | AnonymousUser, business_id: int | None = None) -> StoreQuerySet:
    """The stores ``user`` may see, optionally narrowed to one business (support's filter)."""
    stores = Store.objects.for_user(user).select_related("business", "print_report")
    if business_id is not None:
        stores = stores.filter(business_id=business_id)
    return stores


def business_list_for_filter(*, user: User) -> list[Business]:
    """Businesses offered in the stores filter: only support sees more than its own."""
    if user.is_support:
        return list(Business.objects.order_by("name"))
    return []


def store_email_history(*, store: Store, limit: int = 50) -> QuerySet[StoreEmailSettingsChange]:
    return store.email_settings_changes.select_related("changed_by")[:limit]
