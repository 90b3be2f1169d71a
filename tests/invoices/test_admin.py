from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import User
from invoices.models import Customer, Invoice
from invoices.services import LineData, invoice_apply, invoice_create
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def applied(store_a: Store, customer_a: Customer, admin_a: User) -> Invoice:
    draft = invoice_create(
        store=store_a,
        customer=customer_a,
        created_by=admin_a,
        lines=[LineData("Café", Decimal("1"), Decimal("1000"), Decimal("0"), Decimal("13"))],
    )
    return invoice_apply(invoice=draft, applied_by=admin_a)


def test_support_sees_an_applied_invoice_in_the_admin_but_cannot_change_it(
    support: User, applied: Invoice, customer_a: Customer
) -> None:
    client = client_for(support)
    url = reverse("admin:invoices_invoice_change", args=[applied.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="total"' not in page.text
    assert 'name="customer"' not in page.text

    client.post(url, {"total": "1.00", "notes": "changed", "number": "99", "customer": customer_a.pk})
    applied.refresh_from_db()
    assert (applied.total, applied.notes, applied.number) == (Decimal("1130.00"), "", 1)


def test_an_applied_invoice_cannot_be_deleted_in_the_admin(support: User, applied: Invoice) -> None:
    client = client_for(support)
    response = client.post(reverse("admin:invoices_invoice_delete", args=[applied.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Invoice.objects.filter(pk=applied.pk).exists()


def test_invoices_cannot_be_added_in_the_admin(support: User) -> None:
    assert client_for(support).get(reverse("admin:invoices_invoice_add")).status_code == 403
