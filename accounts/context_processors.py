from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@dataclass(frozen=True)
class NavItem:
    label: str | Promise
    url: str
    active: bool


def nav_items_for(user: User, path: str) -> list[NavItem]:
    """The navigation entries ``user``'s role allows, in display order."""
    entries: list[tuple[str | Promise, str]] = [(_("Home"), reverse("home"))]
    if user.is_support or user.is_store_admin:
        entries.append((_("Stores"), reverse("stores:list")))
    if user.is_support or user.is_store_admin or user.is_cashier:
        entries.append((_("Invoices"), reverse("invoices:list")))
        entries.append((_("Customers"), reverse("invoices:customer_list")))
    if user.is_support or user.is_store_admin:
        entries.append((_("Emails"), reverse("mailer:deliveries")))
    if user.is_store_admin:
        entries.append((_("Users"), reverse("accounts:user_list")))
    if user.is_support:
        entries.append((_("Support admin"), reverse("admin:index")))
        entries.append((_("Task queue (Flower)"), settings.FLOWER_URL))
    home = reverse("home")
    # The longest matching entry is the current one: /invoices/customers/ is Customers, not Invoices.
    current = max((url for _label, url in entries if url != home and path.startswith(url)), key=len, default=home)
    return [NavItem(label, url, active=(url == current and (url != home or path == home))) for label, url in entries]


def navigation(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if not isinstance(user, User) or not user.is_authenticated:
        return {"nav_items": []}
    return {"nav_items": nav_items_for(user, request.path)}
