from dataclasses import dataclass

from django.db import transaction

from accounts.models import Business, User
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
