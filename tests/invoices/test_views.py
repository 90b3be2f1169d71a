import pytest
from django.urls import reverse

from accounts.models import User
from invoices.models import Customer
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_customers_of_another_business_are_never_listed(
    admin_a: User, cashier_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    for user in (admin_a, cashier_a):
        response = client_for(user).get(reverse("invoices:customer_list"))
        assert response.status_code == 200
        assert "Cliente A" in response.text
        assert "Cliente B" not in response.text


def test_customer_search_matches_name_or_legal_id(admin_a: User, customer_a: Customer) -> None:
    Customer.objects.create(business=customer_a.business, name="Otro", legal_id="1-2345-6789")
    client = client_for(admin_a)
    assert "Otro" in client.get(reverse("invoices:customer_list"), {"q": "2345"}).text
    assert "Otro" not in client.get(reverse("invoices:customer_list"), {"q": "Cliente"}).text


def test_anonymous_cannot_list_customers(customer_a: Customer) -> None:
    response = client_for(None).get(reverse("invoices:customer_list"))
    assert response.status_code == 302
