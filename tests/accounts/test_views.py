import pytest
from django.urls import reverse

from accounts.models import User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_sign_in_page_is_spanish_by_default() -> None:
    response = client_for(None).get(reverse("login"))
    assert response.status_code == 200
    assert '<html lang="es">' in response.text
    assert "Iniciar sesión" in response.text
    assert "Contraseña" in response.text


def test_sign_in_page_is_available_in_english() -> None:
    response = client_for(None).get(reverse("login"), headers={"accept-language": "en"})
    assert '<html lang="en">' in response.text
    assert "Sign in" in response.text


def test_the_language_switcher_keeps_english_for_the_session(admin_a: User) -> None:
    client = client_for(admin_a)
    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("home")}, follow=True)
    assert "Welcome" in response.text
    assert "Te damos la bienvenida" not in response.text


def test_it_signs_in_with_username_and_password(admin_a: User) -> None:
    client = client_for(None)
    response = client.post(reverse("login"), {"username": "admin_a", "password": "secret-pass-123"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "Comercial A" in response.text


def test_it_refuses_a_wrong_password_with_a_message(admin_a: User) -> None:
    response = client_for(None).post(reverse("login"), {"username": "admin_a", "password": "nope"})
    assert response.status_code == 200
    assert "Por favor, introduzca un nombre de usuario y clave correctos" in response.text


def test_sign_out_ends_the_session(admin_a: User) -> None:
    client = client_for(admin_a)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_home_requires_sign_in() -> None:
    response = client_for(None).get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def nav_labels(user: User) -> str:
    response = client_for(user).get(reverse("home"))
    assert response.status_code == 200
    start = response.text.index('<nav aria-label="Navegación principal">')
    return response.text[start : response.text.index("</nav>", start)]


def test_store_admin_navigation_has_stores_but_not_support_pages(admin_a: User) -> None:
    nav = nav_labels(admin_a)
    assert "Tiendas" in nav
    assert "Clientes" in nav
    assert "Administración de soporte" not in nav
    assert "Flower" not in nav


def test_cashier_navigation_has_no_stores(cashier_a: User) -> None:
    nav = nav_labels(cashier_a)
    assert "Tiendas" not in nav
    assert "Clientes" in nav


def test_support_navigation_has_the_admin_and_the_task_queue(support: User) -> None:
    nav = nav_labels(support)
    assert "Tiendas" in nav
    assert "Administración de soporte" in nav
    assert "Flower" in nav


def test_only_support_can_open_the_django_admin(admin_a: User, cashier_a: User, support: User) -> None:
    assert client_for(support).get("/admin/").status_code == 200
    for user in (admin_a, cashier_a):
        response = client_for(user).get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_cashier_home_lists_only_assigned_stores(cashier_a: User, store_a2: object) -> None:
    response = client_for(cashier_a).get(reverse("home"))
    assert "Tienda A1" in response.text
    assert "Tienda A2" not in response.text
