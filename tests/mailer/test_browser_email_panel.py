"""A cashier applies an invoice in Chromium and watches its email panel turn to "Enviado",
without reloading the page: a real Celery worker sends it to a real SMTP server."""

from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from finanzapro.celery import app
from invoices.models import Customer
from mailer.models import Delivery
from stores.models import Store
from tests.invoices.test_browser_invoice import sign_in
from tests.smtp import SMTPTestServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_cashier_watches_the_email_of_an_applied_invoice_turn_to_sent(
    page: Page,
    live_server: LiveServer,
    smtp_server: SMTPTestServer,
    empty_broker: None,
    built_in_report_formats: None,
    store_a: Store,
    customer_a: Customer,
    cashier_a: User,
    screenshots_dir: Path,
) -> None:
    store_a.email_enabled = True
    store_a.reply_to = "facturacion@a.example"
    store_a.save()
    assert customer_a.send_invoices_by_email

    sign_in(page, live_server, "cashier_a")
    page.goto(f"{live_server.url}/invoices/new/?store={store_a.pk}")
    page.locator("#id_customer").select_option(label="Cliente A")
    page.locator("#id_lines-0-description").fill("Café molido 1 kg")
    page.locator("#id_lines-0-quantity").fill("2")
    page.locator("#id_lines-0-unit_price").fill("4500")
    page.get_by_test_id("apply-invoice").click()
    expect(page.get_by_test_id("invoice-number")).to_have_text("1")

    # No worker runs yet: the email waits in the queue, and the panel keeps asking.
    panel = page.locator("#email-status")
    expect(panel.get_by_role("heading", name="Correo electrónico")).to_be_visible()
    expect(panel.get_by_test_id("delivery-state")).to_have_text("En cola")
    expect(panel.get_by_test_id("email-deliveries")).to_have_attribute("hx-trigger", "every 2s")
    page.evaluate("window.sameDocument = true")  # gone if the page were loaded again

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        expect(panel.get_by_test_id("delivery-state")).to_have_text("Enviado", timeout=30_000)

    assert page.evaluate("window.sameDocument") is True
    # Settled: the panel stopped asking, and says to whom, when, with which report.
    expect(panel.get_by_test_id("email-deliveries")).not_to_have_attribute("hx-trigger", "every 2s")
    expect(panel.get_by_test_id("delivery-to")).to_have_text("cliente@a.example")
    expect(panel.get_by_test_id("delivery-sent-at")).to_be_visible()
    expect(panel.get_by_test_id("delivery-report")).to_have_text("Factura tamaño carta")
    expect(panel.get_by_test_id("recipient")).to_have_attribute("data-state", "sent")
    expect(panel.get_by_test_id("attempt")).to_have_attribute("data-outcome", "accepted")
    page.screenshot(path=screenshots_dir / "invoice-email-panel-es.png", full_page=True)

    (received,) = smtp_server.messages
    assert received.header_addresses("To") == ["cliente@a.example"]
    assert Delivery.objects.get().state == Delivery.State.SENT
