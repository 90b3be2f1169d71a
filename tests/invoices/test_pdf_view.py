""" "View PDF" on the invoice page: the invoice rendered with its store's print report."""

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape
from pypdf import PdfReader
from pytest_django import Settings

from accounts.models import User
from invoices.models import Customer, Invoice, ReportFormat
from invoices.services import LineData, invoice_apply, invoice_create
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BROKEN_SOURCE = "{% load i18n %}<h1>{% if %}</h1>"  # "if" without a condition: a syntax error


def add_report_template(settings: Settings, directory: Path, name: str, source: str) -> str:
    """Writes ``source`` as the template ``name`` in ``directory`` and adds that directory to the
    project's templates; the ``settings`` fixture makes Django forget its loaded templates, now
    and when the test ends."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], directory]}, *settings.TEMPLATES[1:]]
    return name


def broken_format(template_name: str, *, code: str = "broken", is_active: bool = True) -> ReportFormat:
    return ReportFormat.objects.create(
        code=code,
        name_es="Formato roto",
        name_en="Broken format",
        template_name=template_name,
        page_size=ReportFormat.PageSize.LETTER,
        is_active=is_active,
    )


def make_invoice(store: Store, customer: Customer, user: User, *, apply: bool = True) -> Invoice:
    invoice = invoice_create(
        store=store,
        customer=customer,
        created_by=user,
        lines=[LineData("Café molido 1 kg", Decimal(2), Decimal(4500), tax_rate=Decimal(13))],
    )
    return invoice_apply(invoice=invoice, applied_by=user) if apply else invoice


def pdf_url(invoice: Invoice) -> str:
    return reverse("invoices:pdf", args=[invoice.pk])


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_it_shows_an_applied_invoice_inline_named_after_its_number(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a)
    response = client_for(cashier_a).get(pdf_url(invoice))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="Factura-{invoice.number}.pdf"'
    assert response.content.startswith(b"%PDF")
    assert "molido" in pdf_text(response.content)
    assert "no-store" in response["Cache-Control"]  # a draft's PDF changes with every edit


def test_a_draft_is_named_as_a_draft(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    draft = make_invoice(store_a, customer_a, cashier_a, apply=False)
    response = client_for(cashier_a).get(pdf_url(draft))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'inline; filename="Borrador-{draft.pk}.pdf"'
    assert response.content.startswith(b"%PDF")


def test_download_saves_it_as_a_file(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a)
    response = client_for(cashier_a).get(pdf_url(invoice), {"download": "1"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="Factura-{invoice.number}.pdf"'
    assert response.content.startswith(b"%PDF")


def test_the_invoice_page_links_to_view_print_and_download(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a)
    page = client_for(cashier_a).get(reverse("invoices:detail", args=[invoice.pk])).text
    url = pdf_url(invoice)
    assert f'<a class="button" href="{url}" id="invoice-pdf"' in page
    assert f'<a class="button" href="{url}" target="_blank" rel="noopener" id="invoice-print"' in page
    assert f'href="{url}?download=1" id="invoice-download"' in page


def test_it_uses_the_store_print_report(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    store_a.print_report = ReportFormat.objects.get(code="pos-ticket-80mm")
    store_a.save()
    invoice = make_invoice(store_a, customer_a, cashier_a)
    response = client_for(cashier_a).get(pdf_url(invoice))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_it_validates_ownership(
    admin_a: User, cashier_a: User, admin_b: User, store_a2: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a2, customer_a, admin_a)
    assert client_for(cashier_a).get(pdf_url(invoice)).status_code == 404  # a store they do not work in
    assert client_for(admin_b).get(pdf_url(invoice)).status_code == 404  # another business
    assert client_for(admin_a).get(pdf_url(invoice)).status_code == 200


def test_support_sees_any_invoice(admin_a: User, support: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, admin_a)
    assert client_for(support).get(pdf_url(invoice)).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(admin_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, admin_a)
    response = client_for(None).get(pdf_url(invoice))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def assert_explains_the_failure(response: Any) -> None:
    """The error page names the format and the renderer's reason, and says who can fix it."""
    assert response.status_code == 422
    html = response.text
    reason = response.context["reason"]
    assert reason
    assert escape(reason) in html
    assert "“Broken format”" in html
    assert "support" in html
    assert "%PDF" not in html


def test_a_print_report_whose_template_is_missing_gets_an_explanation_not_a_crash(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    store_a.print_report = broken_format("reports/does-not-exist.html")
    store_a.save()
    invoice = make_invoice(store_a, customer_a, cashier_a)
    client = client_for(cashier_a)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get(pdf_url(invoice))
    assert_explains_the_failure(response)
    assert reverse("invoices:detail", args=[invoice.pk]) in response.text


def test_a_print_report_whose_template_has_a_syntax_error_gets_an_explanation(
    settings: Settings, tmp_path: Path, cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    name = add_report_template(settings, tmp_path, "reports/test-broken-syntax.html", BROKEN_SOURCE)
    store_a.print_report = broken_format(name)
    store_a.save()
    invoice = make_invoice(store_a, customer_a, cashier_a)
    client = client_for(cashier_a)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.get(pdf_url(invoice), {"download": "1"})
    assert_explains_the_failure(response)
    assert "Content-Disposition" not in response


def test_a_missing_default_format_gets_an_explanation(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a)
    ReportFormat.objects.filter(code="invoice-letter").update(code="invoice-letter-renamed")
    response = client_for(cashier_a).get(pdf_url(invoice))
    assert response.status_code == 422
    assert response.context["reason"]
    assert escape(response.context["reason"]) in response.text
