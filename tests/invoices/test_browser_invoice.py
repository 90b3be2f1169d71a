"""A cashier invoices a customer in Chromium: two lines, totals while typing, then Apply."""

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from invoices.models import Customer, Invoice
from invoices.money import format_money
from stores.models import Store

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, live_server: LiveServer, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Usuario").fill(username)
    page.get_by_label("Contraseña").fill("secret-pass-123")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.get_by_role("navigation", name="Navegación principal")).to_be_visible()


def crc(amount: str) -> str:
    return format_money(Decimal(amount), "CRC", "es")


def test_cashier_creates_and_applies_an_invoice(
    page: Page, live_server: LiveServer, cashier_a: User, store_a: Store, customer_a: Customer, screenshots_dir: Path
) -> None:
    sign_in(page, live_server, "cashier_a")
    nav = page.get_by_role("navigation", name="Navegación principal")
    nav.locator('a[href="/invoices/"]').click()
    expect(page.get_by_test_id("invoice-list")).to_be_visible()
    page.get_by_test_id("new-invoice").click()

    expect(page.locator("#id_customer")).to_have_value(str(Customer.objects.get(is_walk_in=True).pk))
    page.locator("#id_customer").select_option(label="Cliente A")

    # First line: the totals follow the typing, computed by the server.
    page.locator("#id_lines-0-description").fill("Café molido 1 kg")
    page.locator("#id_lines-0-quantity").fill("2")
    page.locator("#id_lines-0-unit_price").fill("4500")
    expect(page.locator("#total-total")).to_have_text(crc("10170"))
    expect(page.locator("#total-tax")).to_have_text(crc("1170"))

    # Second line, added in the page by "add line".
    page.get_by_test_id("add-line").click()
    expect(page.get_by_test_id("line-row")).to_have_count(2)
    expect(page.locator("#id_lines-1-description")).to_be_focused()
    expect(page.locator("#id_lines-1-tax_rate")).to_have_value("13")
    page.locator("#id_lines-1-description").fill("Azúcar 2 kg")
    page.locator("#id_lines-1-quantity").fill("3")
    page.locator("#id_lines-1-unit_price").fill("1000")
    page.locator("#id_lines-1-discount_percent").fill("10")
    expect(page.locator("#total-total")).to_have_text(crc("13221"))
    expect(page.locator("#total-discount")).to_have_text(crc("300"))
    expect(page.get_by_test_id("line-total")).to_have_count(2)

    # A third line, added then removed, leaves the totals as they were.
    page.get_by_test_id("add-line").click()
    page.locator("#id_lines-2-description").fill("Error")
    page.locator("#id_lines-2-unit_price").fill("99999")
    expect(page.locator("#total-total")).to_have_text(crc("126219.87"))
    page.get_by_test_id("line-row").nth(2).locator("[data-remove-line]").click()
    expect(page.get_by_test_id("line-row").nth(2)).to_be_hidden()
    expect(page.locator("#total-total")).to_have_text(crc("13221"))
    page.screenshot(path=screenshots_dir / "invoice-form-es.png", full_page=True)

    page.get_by_test_id("apply-invoice").click()
    expect(page.get_by_test_id("invoice-number")).to_have_text("1")
    expect(page.locator("#total-total")).to_have_text(crc("13221"))
    expect(page.locator("#invoice-applied-by")).to_have_text("cashier_a")
    expect(page.locator("#email-status")).to_be_visible()
    page.screenshot(path=screenshots_dir / "invoice-detail-es.png", full_page=True)

    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number, invoice.customer, invoice.applied_by) == (
        "applied",
        1,
        customer_a,
        cashier_a,
    )
    assert [line.description for line in invoice.lines.all()] == ["Café molido 1 kg", "Azúcar 2 kg"]
    assert invoice.total == Decimal("13221.00")

    # The Spanish wording (from the catalog).
    expect(nav.get_by_role("link", name="Facturas")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Factura 1")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Factura 1 aplicada.")
    expect(page.get_by_test_id("invoice-status")).to_have_text("Aplicada")
    expect(page.locator("#email-status")).to_contain_text("Correo electrónico")
