"""Support's choice of the email report is refused when a sample invoice cannot be generated with it."""

from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation
from pytest_django import Settings

from accounts.models import User
from invoices.models import ReportFormat
from stores.forms import StoreForm
from stores.models import Store, StoreEmailSettingsChange
from tests.conftest import client_for
from tests.invoices.test_pdf_view import BROKEN_SOURCE, add_report_template, broken_format
from tests.stores.test_forms import form_data

pytestmark = pytest.mark.django_db


def check(store: Store, user: User, report_format: ReportFormat) -> dict[str, list[str]]:
    """The errors of the form with ``report_format`` chosen, in English."""
    with translation.override("en"):
        form = StoreForm(form_data(store, email_report=report_format.pk), instance=store, user=user)
        form.is_valid()
        return {field: [str(error) for error in errors] for field, errors in form.errors.items()}


def test_a_format_whose_template_is_missing_is_refused_with_the_reason(store_a: Store, support: User) -> None:
    errors = check(store_a, support, broken_format("reports/does-not-exist.html"))
    assert list(errors) == ["email_report"]
    error = errors["email_report"][0]
    assert error.startswith("The format “Broken format” could not be generated: ")
    assert len(error) > len("The format “Broken format” could not be generated: ")


def test_a_format_whose_template_has_a_syntax_error_is_refused(
    settings: Settings, tmp_path: Path, store_a: Store, support: User
) -> None:
    name = add_report_template(settings, tmp_path, "reports/test-broken-syntax.html", BROKEN_SOURCE)
    errors = check(store_a, support, broken_format(name))
    assert list(errors) == ["email_report"]
    assert errors["email_report"][0].startswith("The format “Broken format” could not be generated: ")


def test_a_working_format_is_saved(store_a: Store, support: User) -> None:
    pos = ReportFormat.objects.get(code="pos-ticket-80mm")
    response = client_for(support).post(
        reverse("stores:edit", args=[store_a.pk]), form_data(store_a, email_report=pos.pk)
    )
    assert response.status_code == 302
    store_a.refresh_from_db()
    assert store_a.email_report == pos


def test_the_edit_page_shows_the_refusal_under_the_field_and_saves_nothing(store_a: Store, support: User) -> None:
    broken = broken_format("reports/does-not-exist.html")
    client = client_for(support)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = client.post(
        reverse("stores:edit", args=[store_a.pk]), form_data(store_a, name="Tienda A1 Centro", email_report=broken.pk)
    )
    assert response.status_code == 200
    field_html = response.text.split('id="field-email_report"', 1)[1].split("</div>", 1)[0]
    assert "The format “Broken format” could not be generated: " in field_html
    assert response.context["active_tab"] == "email"
    store_a.refresh_from_db()
    assert (store_a.name, store_a.email_report) == ("Tienda A1", None)
    assert not StoreEmailSettingsChange.objects.exists()


def test_an_unchanged_format_is_not_checked_again(store_a: Store, support: User) -> None:
    # Kept as it is, a format that stopped rendering does not block the store's other settings.
    broken = broken_format("reports/does-not-exist.html")
    Store.objects.filter(pk=store_a.pk).update(email_report=broken)
    store_a.refresh_from_db()
    form = StoreForm(form_data(store_a, phone="2222-0000"), instance=store_a, user=support)
    assert form.is_valid(), form.errors
