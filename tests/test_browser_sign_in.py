"""A person signs in through the real page in Chromium."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_store_admin_signs_in_and_out_in_chromium(
    page: Page, live_server: LiveServer, admin_a: User, screenshots_dir: Path
) -> None:
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()

    page.get_by_label("Usuario").fill("admin_a")
    page.get_by_label("Contraseña").fill("wrong-password")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("alert")).to_contain_text("nombre de usuario y clave correctos")

    page.get_by_label("Contraseña").fill("secret-pass-123")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("navigation", name="Navegación principal")).to_contain_text("Tiendas")
    page.screenshot(path=screenshots_dir / "home-store-admin-es.png", full_page=True)

    page.get_by_role("button", name="Cerrar sesión").click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()


def test_the_sign_in_page_switches_to_english(page: Page, live_server: LiveServer, db: None) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
