"""Report formats in the admin: previewed as a sample invoice, and refused on save when they cannot print."""

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from accounts.models import User
from invoices.models import ReportFormat
from tests.conftest import client_for
from tests.invoices.test_pdf_view import BROKEN_SOURCE, add_report_template, broken_format

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:invoices_reportformat_add")


def change_url(report_format: ReportFormat) -> str:
    return reverse("admin:invoices_reportformat_change", args=[report_format.pk])


def preview_url(report_format: ReportFormat) -> str:
    return reverse("admin:invoices_reportformat_preview", args=[report_format.pk])


def format_data(**changes: Any) -> dict[str, Any]:
    data = {
        "code": "letter-blue",
        "name_es": "Carta azul",
        "name_en": "Blue letter",
        "template_name": "reports/invoice_full_page.html",
        "page_size": "letter",
        "is_active": "on",
        "show_logo": "on",
        "footer_text": "Gracias por su compra",
        "accent_color": "#1d4ed8",
    }
    return {key: value for key, value in (data | changes).items() if value is not None}


def data_of(report_format: ReportFormat, **changes: Any) -> dict[str, Any]:
    saved = {
        "code": report_format.code,
        "name_es": report_format.name_es,
        "name_en": report_format.name_en,
        "template_name": report_format.template_name,
        "page_size": report_format.page_size,
        "is_active": "on" if report_format.is_active else None,
        "show_logo": "on" if report_format.show_logo else None,
        "footer_text": report_format.footer_text,
        "accent_color": report_format.accent_color,
    }
    return format_data(**(saved | changes))


def english(user: User) -> Client:
    client = client_for(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def template_errors(response: Any) -> list[str]:
    return list(response.context["adminform"].form.errors.get("template_name", []))


def test_a_new_format_with_a_working_template_is_saved(support: User) -> None:
    response = client_for(support).post(ADD_URL, format_data())
    assert response.status_code == 302
    assert ReportFormat.objects.get(code="letter-blue").footer_text == "Gracias por su compra"


def test_a_valid_edit_is_saved(support: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    response = client_for(support).post(change_url(letter), data_of(letter, footer_text="Pura vida"))
    assert response.status_code == 302
    letter.refresh_from_db()
    assert letter.footer_text == "Pura vida"


def test_a_template_that_does_not_exist_is_refused_by_name(support: User) -> None:
    response = english(support).post(ADD_URL, format_data(template_name="reports/does-not-exist.html"))
    assert response.status_code == 200
    assert template_errors(response) == ["The template “reports/does-not-exist.html” does not exist."]
    assert "The template “reports/does-not-exist.html” does not exist." in response.text
    assert not ReportFormat.objects.filter(code="letter-blue").exists()


def test_an_edit_to_a_missing_template_leaves_the_format_as_it_was(support: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    before = letter.template_name
    response = english(support).post(change_url(letter), data_of(letter, template_name="reports/typo.html"))
    assert response.status_code == 200
    assert template_errors(response) == ["The template “reports/typo.html” does not exist."]
    letter.refresh_from_db()
    assert letter.template_name == before


@pytest.mark.parametrize("name", ["base.html", "admin/base.html", "reports/../admin/base.html"])
def test_a_template_outside_the_reports_folder_is_refused(support: User, name: str) -> None:
    response = english(support).post(ADD_URL, format_data(template_name=name))
    assert response.status_code == 200
    assert template_errors(response) == [
        "Choose a template under templates/reports/, such as “reports/invoice_full_page.html”."
    ]
    assert not ReportFormat.objects.filter(code="letter-blue").exists()


def test_a_template_with_a_syntax_error_is_refused_naming_it_and_the_problem(
    settings: Settings, tmp_path: Path, support: User
) -> None:
    name = add_report_template(settings, tmp_path, "reports/test-broken-syntax.html", BROKEN_SOURCE)
    response = english(support).post(ADD_URL, format_data(template_name=name))
    assert response.status_code == 200
    [error] = template_errors(response)
    assert error.startswith("The template “reports/test-broken-syntax.html” has an error: ")
    assert "if" in error.removeprefix("The template “reports/test-broken-syntax.html” has an error: ")
    assert not ReportFormat.objects.filter(code="letter-blue").exists()


def test_a_template_that_fails_while_rendering_is_refused_with_the_reason(
    settings: Settings, tmp_path: Path, support: User
) -> None:
    # It loads, so only generating a sample invoice finds that its include is missing.
    source = '{% include "reports/test-missing-part.html" %}'
    name = add_report_template(settings, tmp_path, "reports/test-broken-include.html", source)
    response = english(support).post(ADD_URL, format_data(template_name=name))
    assert response.status_code == 200
    errors = list(response.context["adminform"].form.non_field_errors())
    assert len(errors) == 1
    prefix = "A sample invoice could not be generated with the template “reports/test-broken-include.html”: "
    assert errors[0].startswith(prefix)
    assert len(errors[0]) > len(prefix)
    assert not ReportFormat.objects.filter(code="letter-blue").exists()


def assert_is_pdf(response: Any) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline;")
    assert response.content.startswith(b"%PDF")


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_preview_answers_a_sample_invoice_as_a_pdf(support: User, language: str) -> None:
    for report_format in ReportFormat.objects.all():
        assert_is_pdf(client_for(support).get(preview_url(report_format), {"language": language}))


def test_the_list_and_the_change_page_link_to_the_preview(support: User) -> None:
    client = client_for(support)
    letter = ReportFormat.objects.get(code="invoice-letter")
    url = preview_url(letter)
    listing = client.get(reverse("admin:invoices_reportformat_changelist")).text
    assert f'<a href="{url}?language=es" target="_blank"' in listing
    assert f'<a href="{url}?language=en" target="_blank"' in listing
    page = client.get(change_url(letter)).text
    assert f'<a href="{url}?language=es" target="_blank" rel="noopener" hreflang="es" id="report-preview-es">' in page


def test_a_saved_format_that_stopped_rendering_previews_as_an_error_message(support: User) -> None:
    broken = broken_format("reports/does-not-exist.html")
    response = english(support).get(preview_url(broken), follow=True)
    assert response.redirect_chain == [(change_url(broken), 302)]
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("The format “Broken format” could not be generated: ")


def test_the_preview_of_a_format_that_does_not_exist_is_404(support: User) -> None:
    response = client_for(support).get(reverse("admin:invoices_reportformat_preview", args=[999999]))
    assert response.status_code == 404


def test_the_preview_is_for_staff_only(admin_a: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    response = client_for(admin_a).get(preview_url(letter))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
