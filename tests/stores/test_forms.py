from typing import Any

import pytest

from accounts.models import User
from invoices.models import ReportFormat
from stores.forms import StoreForm
from stores.models import Store

pytestmark = pytest.mark.django_db


def form_data(store: Store, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": store.name,
        "legal_id": store.legal_id,
        "address": store.address,
        "phone": store.phone,
        "email": store.email,
        "currency": store.currency,
        "print_report": store.print_report_id or "",
        "reply_to": store.reply_to,
        "copy_to": store.copy_to,
        "failure_contacts": store.failure_contacts,
        "email_report": store.email_report_id or "",
        "notify_applying_user": "on" if store.notify_applying_user else "",
        "email_enabled": "on" if store.email_enabled else "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value not in ("", None, False)}


def test_reply_to_offers_the_store_email_first(store_a: Store, admin_a: User) -> None:
    form = StoreForm(instance=store_a, user=admin_a)
    assert form["reply_to"].value() == "a1@a.example"


def test_reply_to_is_required_when_sending_is_on(store_a: Store, admin_a: User) -> None:
    form = StoreForm(form_data(store_a, email_enabled="on"), instance=store_a, user=admin_a)
    assert not form.is_valid()
    assert list(form.errors) == ["reply_to"]
    assert [tab.slug for tab in form.tabs() if tab.has_errors] == ["email"]


def test_reply_to_is_optional_when_sending_is_off(store_a: Store, admin_a: User) -> None:
    assert StoreForm(form_data(store_a), instance=store_a, user=admin_a).is_valid()


def test_copy_to_is_normalized(store_a: Store, admin_a: User) -> None:
    form = StoreForm(
        form_data(store_a, email_enabled="on", reply_to="r@a.example", copy_to=" B@Y.com,a@x.com;b@y.com;"),
        instance=store_a,
        user=admin_a,
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["copy_to"] == "b@y.com; a@x.com"


@pytest.mark.parametrize("field", ["copy_to", "failure_contacts"])
def test_a_bad_address_in_a_list_is_named_under_its_field(field: str, store_a: Store, admin_a: User) -> None:
    form = StoreForm(form_data(store_a, **{field: "a@x.com; nope"}), instance=store_a, user=admin_a)
    assert not form.is_valid()
    assert "nope" in form.errors[field][0]


@pytest.mark.parametrize("field", ["reply_to", "copy_to", "failure_contacts", "email"])
def test_header_injection_is_refused_in_every_address_field(field: str, store_a: Store, admin_a: User) -> None:
    form = StoreForm(form_data(store_a, **{field: "a@x.com\r\nBcc: z@z.com"}), instance=store_a, user=admin_a)
    assert not form.is_valid()
    assert field in form.errors


def test_notify_applying_user_is_on_for_a_new_store(business_a: object) -> None:
    assert Store().notify_applying_user is True


def test_email_report_is_disabled_for_a_store_admin(store_a: Store, admin_a: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    form = StoreForm(form_data(store_a, email_report=letter.pk), instance=store_a, user=admin_a)
    assert form.fields["email_report"].disabled
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email_report"] is None


def test_support_can_choose_an_active_email_report(store_a: Store, support: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    form = StoreForm(form_data(store_a, email_report=letter.pk), instance=store_a, user=support)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email_report"] == letter


def test_support_cannot_choose_a_switched_off_format(store_a: Store, support: User) -> None:
    off = ReportFormat.objects.create(
        code="old", name_es="Viejo", name_en="Old", template_name="x.html", page_size="A4", is_active=False
    )
    form = StoreForm(form_data(store_a, email_report=off.pk), instance=store_a, user=support)
    assert not form.is_valid()
    assert "email_report" in form.errors


def test_support_cannot_choose_a_format_that_does_not_exist(store_a: Store, support: User) -> None:
    form = StoreForm(form_data(store_a, email_report=999999), instance=store_a, user=support)
    assert not form.is_valid()
    assert "email_report" in form.errors


def test_a_store_keeps_a_format_support_switched_off_later(store_a: Store, admin_a: User, support: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    store_a.email_report = letter
    store_a.save()
    letter.is_active = False
    letter.save()
    for user in (admin_a, support):
        form = StoreForm(form_data(store_a), instance=store_a, user=user)
        assert form.is_valid(), form.errors
        assert form.cleaned_data["email_report"] == letter


def test_the_tab_holding_an_error_is_marked(store_a: Store, admin_a: User) -> None:
    form = StoreForm(form_data(store_a, name="", copy_to="nope"), instance=store_a, user=admin_a)
    assert not form.is_valid()
    assert {tab.slug: tab.has_errors for tab in form.tabs()} == {"general": True, "print": False, "email": True}
