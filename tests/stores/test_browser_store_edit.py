"""A store admin configures invoice emails in Chromium, as the help article describes."""

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from stores.models import Store
from tests.smtp import SMTPTestServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, live_server: LiveServer, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Usuario").fill(username)
    page.get_by_label("Contraseña").fill("secret-pass-123")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("navigation", name="Navegación principal")).to_be_visible()


def test_store_admin_turns_on_invoice_emails(
    page: Page,
    live_server: LiveServer,
    admin_a: User,
    store_a: Store,
    store_a2: Store,
    screenshots_dir: Path,
    smtp_server: SMTPTestServer,
    celery_worker: Any,
    built_in_report_formats: None,
) -> None:
    sign_in(page, live_server, "admin_a")
    page.get_by_role("navigation", name="Navegación principal").get_by_role("link", name="Tiendas").click()
    expect(page.get_by_role("heading", name="Tiendas")).to_be_visible()
    page.screenshot(path=screenshots_dir / "stores-window-es.png", full_page=True)

    page.get_by_role("link", name="Editar Tienda A1").click()
    expect(page.get_by_role("heading", name="Editar tienda: Tienda A1")).to_be_visible()

    # Typed on General, kept while the email tab is open.
    page.get_by_label("Teléfono").fill("2222-1111")
    email_tab = page.get_by_role("tab", name="Enviar Facturas por Email")
    email_tab.click()
    expect(page.get_by_label("Teléfono")).to_be_hidden()
    page.get_by_label("Habilitar Envío de Facturas por Email").check()
    expect(page.get_by_label("Correo de Respuesta")).to_have_value("a1@a.example")
    page.get_by_label("Correo de Respuesta").fill("respuestas@a.example")
    page.get_by_label("Enviar copias a").fill("conta@a.example; nope")
    page.get_by_role("tab", name="General").click()
    expect(page.get_by_label("Teléfono")).to_have_value("2222-1111")
    email_tab.click()
    page.get_by_role("button", name="Guardar").click()

    # The error under the field, on the tab that holds it, marked.
    copy_field = page.locator("#field-copy_to")
    expect(copy_field.get_by_role("alert")).to_have_text("“nope” no es una dirección de correo válida.")
    expect(email_tab).to_have_attribute("aria-selected", "true")
    expect(email_tab).to_have_class("tab-has-errors")
    expect(page.get_by_label("Teléfono")).to_be_hidden()

    page.get_by_label("Enviar copias a").fill("conta@a.example, dueno@a.example;")
    page.get_by_role("button", name="Guardar").click()
    expect(page.get_by_role("status").first).to_contain_text("Tienda “Tienda A1” guardada.")

    # Reopen: the saved values are there, and the history says who changed what.
    page.goto(f"{live_server.url}/stores/{store_a.pk}/edit/")
    page.get_by_role("tab", name="Enviar Facturas por Email").click()
    expect(page.get_by_label("Habilitar Envío de Facturas por Email")).to_be_checked()
    expect(page.get_by_label("Correo de Respuesta")).to_have_value("respuestas@a.example")
    expect(page.get_by_label("Enviar copias a")).to_have_value("conta@a.example; dueno@a.example")
    history = page.locator("#email-settings-history")
    expect(history).to_contain_text("Enviar copias a")
    expect(history).to_contain_text("conta@a.example; dueno@a.example")
    # The test email goes out with the saved settings, through the worker; the answer appears
    # without leaving the page (the status box asks again until the mail server has answered).
    page.get_by_role("button", name="Enviar correo de prueba").click()
    expect(page.locator("#test-email-result")).to_contain_text("Correo de prueba enviado a admin_a@example.com")
    expect(page.get_by_label("Enviar copias a")).to_be_visible()
    assert [message.envelope_recipients for message in smtp_server.messages] == [
        ["admin_a@example.com", "conta@a.example", "dueno@a.example"]
    ]
    page.get_by_text("Opciones avanzadas").click()
    expect(page.get_by_label("Reporte enviado por correo")).to_be_disabled()
    expect(page.get_by_text("Te recomendamos no indicar nada en este campo")).to_be_visible()
    page.screenshot(path=screenshots_dir / "store-email-tab-es.png", full_page=True)

    store_a.refresh_from_db()
    assert store_a.phone == "2222-1111"
    assert store_a.copy_to == "conta@a.example; dueno@a.example"

    # The same page in English.
    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("tab", name="Send invoices by email")).to_be_visible()
    page.get_by_role("tab", name="Send invoices by email").click()
    expect(page.get_by_label("Enable sending invoices by email")).to_be_checked()
    expect(page.get_by_label("Reply-to address")).to_have_value("respuestas@a.example")
    page.screenshot(path=screenshots_dir / "store-email-tab-en.png", full_page=True)
