import pytest
from django.urls import reverse

from accounts.models import User
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_store_admin_sees_the_stores_of_their_business_only(
    admin_a: User, store_a: Store, store_a2: Store, store_b: Store
) -> None:
    response = client_for(admin_a).get(reverse("stores:list"))
    assert response.status_code == 200
    assert "Tienda A1" in response.text
    assert "Tienda A2" in response.text
    assert "Tienda B1" not in response.text


def test_cashier_gets_404_on_the_stores_window(cashier_a: User) -> None:
    assert client_for(cashier_a).get(reverse("stores:list")).status_code == 404


def test_anonymous_is_sent_to_sign_in(store_a: Store) -> None:
    response = client_for(None).get(reverse("stores:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_support_sees_every_business_and_can_filter_by_one(support: User, store_a: Store, store_b: Store) -> None:
    client = client_for(support)
    everything = client.get(reverse("stores:list"))
    assert "Tienda A1" in everything.text
    assert "Tienda B1" in everything.text
    only_b = client.get(reverse("stores:list"), {"business": store_b.business_id})
    assert "Tienda B1" in only_b.text
    assert "Tienda A1" not in only_b.text


def test_a_store_admin_cannot_use_the_business_filter_to_see_another_business(
    admin_a: User, store_a: Store, store_b: Store
) -> None:
    response = client_for(admin_a).get(reverse("stores:list"), {"business": store_b.business_id})
    assert "Tienda B1" not in response.text


def test_for_user_scopes_by_role(
    admin_a: User, cashier_a: User, admin_b: User, support: User, store_a: Store, store_a2: Store, store_b: Store
) -> None:
    assert set(Store.objects.for_user(admin_a)) == {store_a, store_a2}
    assert set(Store.objects.for_user(cashier_a)) == {store_a}
    assert set(Store.objects.for_user(admin_b)) == {store_b}
    assert set(Store.objects.for_user(support)) == {store_a, store_a2, store_b}
    admin_a.is_active = False
    assert not Store.objects.for_user(admin_a).exists()
