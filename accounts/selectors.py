from django.db.models import Prefetch, QuerySet

from accounts.models import Business, User
from stores.models import Store, StoreQuerySet


def managed_user_list(*, admin: User) -> QuerySet[User]:
    """The users a store admin manages: their own business's admins and cashiers.

    Support staff never appear, even if one were linked to the business: they are managed in
    the Django admin, and a store admin must not be able to lock them out.
    """
    if not (admin.is_active and admin.is_store_admin):
        return User.objects.none()
    return (
        User.objects.filter(business=admin.business, is_staff=False, is_superuser=False)
        .select_related("business")
        .prefetch_related(Prefetch("stores", queryset=Store.objects.order_by("name")))
        .order_by("username")
    )


def assignable_store_list(*, business: Business) -> StoreQuerySet:
    """The stores a cashier of ``business`` may be assigned to."""
    return Store.objects.filter(business=business).order_by("name")


def username_is_taken(*, username: str) -> bool:
    """Usernames are global (they sign in without naming a business), compared like Django's sign-up form."""
    return User.objects.filter(username__iexact=username).exists()
