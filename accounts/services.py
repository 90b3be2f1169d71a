from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User
from accounts.selectors import username_is_taken
from invoices.models import Customer, ReportFormat
from stores.models import Store

DEMO_BUSINESS_LEGAL_ID = "3-101-000001"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


DEMO_LOGINS = (
    DemoLogin("store admin", "admin.demo", "tienda-demo-2026"),
    DemoLogin("cashier", "cajero.demo", "cajero-demo-2026"),
    DemoLogin("support", "soporte.demo", "soporte-demo-2026"),
)


def _demo_user(*, username: str, password: str, created_fields: dict[str, object]) -> User:
    user, created = User.objects.get_or_create(username=username, defaults=created_fields)
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def demo_data_load() -> tuple[Business, list[DemoLogin]]:
    """Creates the demo business once; running it again changes nothing."""
    business, _ = Business.objects.get_or_create(
        legal_id=DEMO_BUSINESS_LEGAL_ID, defaults={"name": "Comercial La Sabana S.A."}
    )
    # The help article's example: the store prints 80 mm tickets, customers get a full page.
    central, _ = Store.objects.get_or_create(
        business=business,
        name="Tienda Central",
        defaults={
            "legal_id": DEMO_BUSINESS_LEGAL_ID,
            "address": "Avenida 2, San José, Costa Rica",
            "phone": "+506 2222-0000",
            "email": "central@lasabana.example",
            "print_report": ReportFormat.objects.get(code="pos-ticket-80mm"),
            "email_enabled": True,
            "reply_to": "central@lasabana.example",
            "copy_to": "contabilidad@lasabana.example",
            "email_report": ReportFormat.objects.get(code="invoice-letter"),
        },
    )
    Store.objects.get_or_create(
        business=business,
        name="Sucursal Escazú",
        defaults={
            "legal_id": DEMO_BUSINESS_LEGAL_ID,
            "address": "Plaza Escazú, San José, Costa Rica",
            "phone": "+506 2288-0000",
            "email": "escazu@lasabana.example",
            "print_report": ReportFormat.objects.get(code="invoice-letter"),
        },
    )
    admin_login, cashier_login, support_login = DEMO_LOGINS
    _demo_user(
        username=admin_login.username,
        password=admin_login.password,
        created_fields={
            "first_name": "Ana",
            "last_name": "Rojas",
            "email": "ana.rojas@lasabana.example",
            "business": business,
            "role": User.Role.STORE_ADMIN,
        },
    )
    cashier = _demo_user(
        username=cashier_login.username,
        password=cashier_login.password,
        created_fields={
            "first_name": "Carlos",
            "last_name": "Mora",
            "email": "carlos.mora@lasabana.example",
            "business": business,
            "role": User.Role.CASHIER,
        },
    )
    cashier.stores.add(central)
    _demo_user(
        username=support_login.username,
        password=support_login.password,
        created_fields={
            "first_name": "Sofía",
            "last_name": "Vargas",
            "email": "soporte@finanzapro.local",
            "is_staff": True,
            "is_superuser": True,
        },
    )
    customers = [
        ("Cliente contado", "", "", False, "es", True),
        ("Distribuidora Guanacaste Ltda.", "3-102-456789", "compras@guanacaste.example", True, "es", False),
        ("María Fernández", "1-1234-0567", "maria.fernandez@example.com", True, "es", False),
        ("Pacific Surf Supplies LLC", "", "billing@pacificsurf.example; ap@pacificsurf.example", True, "en", False),
        ("Ferretería El Clavo", "3-101-998877", "", False, "es", False),
    ]
    for name, legal_id, emails, opted_in, language, walk_in in customers:
        Customer.objects.get_or_create(
            business=business,
            name=name,
            defaults={
                "legal_id": legal_id,
                "emails": emails,
                "send_invoices_by_email": opted_in,
                "language": language,
                "is_walk_in": walk_in,
            },
        )
    return business, list(DEMO_LOGINS)


# --- Users of a business, managed by its store admins -----------------------------------


def _check_can_manage_users(*, actor: User, business: Business) -> None:
    """Only the business's store admins (and support) manage its users.

    The business row is locked and the actor read again under the lock, so two admins who
    demote each other at the same moment are serialized and the second one, no longer an
    admin, is refused: the business always keeps an admin.
    """
    Business.objects.select_for_update().get(pk=business.pk)
    if actor.is_support:
        return
    still_admin = User.objects.filter(
        pk=actor.pk, business=business, role=User.Role.STORE_ADMIN, is_active=True
    ).exists()
    if not still_admin:
        raise PermissionDenied


def user_stores_validate(*, business: Business, role: User.Role, stores: Iterable[Store]) -> list[Store]:
    """The stores to assign: for a cashier, at least one, all of ``business``; none for a store
    admin, who works in every store of the business anyway. Forms call it too, so that this
    error shows up together with the others."""
    chosen = list(stores)
    if any(store.business_id != business.pk for store in chosen):
        raise ValidationError({"stores": _("Choose only stores of your business.")}, code="foreign_store")
    if role != User.Role.CASHIER:
        return []
    if not chosen:
        raise ValidationError({"stores": _("Assign at least one store to a cashier.")}, code="cashier_without_store")
    return chosen


@transaction.atomic
def user_create(
    *,
    business: Business,
    created_by: User,
    username: str,
    first_name: str,
    last_name: str,
    email: str,
    role: User.Role,
    stores: Iterable[Store],
    password: str,
) -> User:
    """Adds a store admin or a cashier to ``business``. The password is checked by the form."""
    _check_can_manage_users(actor=created_by, business=business)
    username = User.normalize_username(username)
    if username_is_taken(username=username):
        raise ValidationError({"username": _("A user with that username already exists.")}, code="unique")
    assigned = user_stores_validate(business=business, role=role, stores=stores)
    try:
        # A savepoint: losing a race for the username must not break the caller's transaction.
        with transaction.atomic():
            user = User.objects.create_user(
                username=username,
                email=User.objects.normalize_email(email),
                password=password,
                first_name=first_name,
                last_name=last_name,
                business=business,
                role=role,
            )
    except IntegrityError as exc:
        raise ValidationError({"username": _("A user with that username already exists.")}, code="unique") from exc
    user.stores.set(assigned)
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    updated_by: User,
    first_name: str,
    last_name: str,
    email: str,
    role: User.Role,
    stores: Iterable[Store],
    is_active: bool,
) -> User:
    """Changes a user's name, email, role, store assignments and whether they may sign in.

    Nobody demotes or deactivates themselves here: that is how a business would end up with
    no store admin able to undo it.
    """
    if user.business is None or user.is_staff or user.is_superuser:
        raise PermissionDenied
    business = user.business
    _check_can_manage_users(actor=updated_by, business=business)
    if user.pk == updated_by.pk:
        errors: dict[str, ValidationError] = {}
        if not is_active:
            errors["is_active"] = ValidationError(_("You cannot deactivate your own account."), code="self_deactivate")
        if role != user.role:
            errors["role"] = ValidationError(_("You cannot change your own role."), code="self_role")
        if errors:
            raise ValidationError(errors)
    assigned = user_stores_validate(business=business, role=role, stores=stores)
    user.first_name = first_name
    user.last_name = last_name
    user.email = User.objects.normalize_email(email)
    user.role = role
    user.is_active = is_active
    user.save(update_fields=["first_name", "last_name", "email", "role", "is_active"])
    user.stores.set(assigned)
    return user
