from typing import Any

import pytest
from django.urls import reverse

from accounts.models import User
from invoices.models import Customer
from invoices.services import walk_in_customer_get
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def customer_data(**changes: Any) -> dict[str, Any]:
    data = {"name": "Soda La Esquina", "legal_id": "3-101-555555", "emails": "", "language": "es"}
    data.update(changes)
    return data


@pytest.mark.parametrize("actor", ["admin_a", "cashier_a"])
def test_store_admins_and_cashiers_create_customers_of_their_business(
    actor: str, request: pytest.FixtureRequest, business_a: Any
) -> None:
    user: User = request.getfixturevalue(actor)
    response = client_for(user).post(
        reverse("invoices:customer_create"),
        customer_data(
            emails=" Pagos@Soda.example ; compras@soda.example,pagos@soda.example;", send_invoices_by_email="on"
        ),
    )
    assert response.status_code == 302
    customer = Customer.objects.get(name="Soda La Esquina")
    assert customer.business == business_a
    assert customer.emails == "pagos@soda.example; compras@soda.example"
    assert customer.send_invoices_by_email is True


def test_a_bad_address_is_named_and_nothing_is_saved(admin_a: User) -> None:
    response = client_for(admin_a).post(reverse("invoices:customer_create"), customer_data(emails="a@x.com; nope"))
    assert response.status_code == 200
    assert "“nope” no es una dirección de correo válida." in response.text
    assert not Customer.objects.filter(name="Soda La Esquina").exists()


def test_header_injection_in_customer_emails_is_refused(admin_a: User) -> None:
    response = client_for(admin_a).post(
        reverse("invoices:customer_create"), customer_data(emails="a@x.com\r\nBcc: z@z.com")
    )
    assert response.status_code == 200
    assert not Customer.objects.filter(name="Soda La Esquina").exists()


def test_opting_in_without_an_address_is_explained(admin_a: User) -> None:
    response = client_for(admin_a).post(reverse("invoices:customer_create"), customer_data(send_invoices_by_email="on"))
    assert response.status_code == 200
    assert not Customer.objects.filter(name="Soda La Esquina").exists()


def test_the_opt_in_checkbox_has_the_articles_label(admin_a: User) -> None:
    response = client_for(admin_a).get(reverse("invoices:customer_create"))
    assert "Enviar facturas por correo electrónico" in response.text


def test_editing_a_customer(admin_a: User, customer_a: Customer) -> None:
    response = client_for(admin_a).post(
        reverse("invoices:customer_edit", args=[customer_a.pk]),
        customer_data(name="Cliente A S.A.", emails="nuevo@a.example", language="en"),
    )
    assert response.status_code == 302
    customer_a.refresh_from_db()
    assert (customer_a.name, customer_a.emails, customer_a.language) == ("Cliente A S.A.", "nuevo@a.example", "en")
    assert customer_a.send_invoices_by_email is False


def test_the_walk_in_customer_never_receives_email(admin_a: User, business_a: Any) -> None:
    walk_in = walk_in_customer_get(business=business_a)
    assert walk_in.name == "Cliente contado"
    response = client_for(admin_a).post(
        reverse("invoices:customer_edit", args=[walk_in.pk]),
        customer_data(name="Otro nombre", emails="x@x.example", send_invoices_by_email="on"),
    )
    assert response.status_code == 302
    walk_in.refresh_from_db()
    assert walk_in.name == "Cliente contado"
    assert walk_in.send_invoices_by_email is False
    assert walk_in_customer_get(business=business_a) == walk_in


def test_search_finds_by_name_or_legal_id(admin_a: User, customer_a: Customer) -> None:
    client = client_for(admin_a)
    assert "Cliente A" in client.get(reverse("invoices:customer_list"), {"q": "client"}).text
    assert "Cliente A" not in client.get(reverse("invoices:customer_list"), {"q": "zzz"}).text


@pytest.mark.parametrize("actor", ["admin_b", "anonymous"])
def test_outsiders_can_neither_see_nor_change_a_customer(
    actor: str, request: pytest.FixtureRequest, customer_a: Customer
) -> None:
    user = None if actor == "anonymous" else request.getfixturevalue(actor)
    client = client_for(user)
    edit = reverse("invoices:customer_edit", args=[customer_a.pk])
    for response in (client.get(edit), client.post(edit, customer_data(name="Hacked"))):
        assert response.status_code in (302, 404)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login"))
    listing = client.get(reverse("invoices:customer_list"))
    assert "Cliente A" not in listing.text
    customer_a.refresh_from_db()
    assert customer_a.name == "Cliente A"


def test_support_sees_every_business_but_edits_in_the_admin(
    support: User, customer_a: Customer, customer_b: Customer
) -> None:
    client = client_for(support)
    listing = client.get(reverse("invoices:customer_list")).text
    assert "Cliente A" in listing
    assert "Cliente B" in listing
    assert client.get(reverse("invoices:customer_create")).status_code == 404
