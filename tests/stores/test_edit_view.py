import io
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from accounts.models import User
from invoices.models import ReportFormat
from stores.models import Store, StoreEmailSettingsChange
from tests.conftest import client_for
from tests.stores.test_forms import form_data

pytestmark = pytest.mark.django_db


def edit_url(store: Store) -> str:
    return reverse("stores:edit", args=[store.pk])


def post(client: Client, store: Store, **changes: Any) -> Any:
    return client.post(edit_url(store), form_data(store, **changes))


def test_store_admin_opens_the_edit_page_with_its_three_tabs(store_a: Store, admin_a: User) -> None:
    response = client_for(admin_a).get(edit_url(store_a))
    assert response.status_code == 200
    tabs = re.findall(r'role="tab"[^>]*>\s*([^<]+?)\s*<', response.text)
    assert tabs == ["General", "Impresión", "Enviar Facturas por Email"]
    assert "Habilitar Envío de Facturas por Email" in response.text
    assert "Correo de Respuesta" in response.text
    assert "Enviar copias a" in response.text
    assert "Te recomendamos no indicar nada en este campo" in response.text


def test_without_javascript_every_tab_panel_is_shown(store_a: Store, admin_a: User) -> None:
    html = client_for(admin_a).get(edit_url(store_a)).text
    panels = re.findall(r'<section class="tab-panel[^>]*>', html)
    assert len(panels) == 3
    assert not any("hidden" in panel for panel in panels)
    assert '<details class="advanced">' in html  # folded by default


def test_saving_stores_every_tab_and_returns_to_the_same_tab(store_a: Store, admin_a: User) -> None:
    client = client_for(admin_a)
    pos = ReportFormat.objects.get(code="pos-ticket-80mm")
    response = client.post(
        edit_url(store_a),
        {
            **form_data(
                store_a,
                name="Tienda A1 Centro",
                print_report=pos.pk,
                email_enabled="on",
                reply_to="Respuestas@A.example",
                copy_to="conta@a.example, dueno@a.example;",
                failure_contacts="soporte@a.example",
            ),
            "active_tab": "email",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == edit_url(store_a) + "?tab=email"
    store_a.refresh_from_db()
    assert store_a.name == "Tienda A1 Centro"
    assert store_a.print_report == pos
    assert store_a.email_enabled is True
    assert store_a.reply_to == "respuestas@a.example"
    assert store_a.copy_to == "conta@a.example; dueno@a.example"
    assert store_a.failure_contacts == "soporte@a.example"
    page = client.get(response["Location"])
    assert "Tienda “Tienda A1 Centro” guardada." in page.text


def test_an_error_is_shown_under_its_field_and_nothing_is_saved(store_a: Store, admin_a: User) -> None:
    response = post(client_for(admin_a), store_a, email_enabled="on", reply_to="r@a.example", copy_to="a@x.com; nope")
    assert response.status_code == 200
    field_html = response.text.split('id="field-copy_to"', 1)[1].split("</div>", 1)[0]
    assert "“nope” no es una dirección de correo válida." in field_html
    assert (
        'class="tab-has-errors"'
        in response.text.split('data-tab="email"')[0].rsplit("<a", 1)[1] + 'class="tab-has-errors"'
    )
    store_a.refresh_from_db()
    assert store_a.email_enabled is False
    assert not StoreEmailSettingsChange.objects.exists()


def test_the_tab_with_the_error_is_the_one_shown(store_a: Store, admin_a: User) -> None:
    response = client_for(admin_a).post(
        edit_url(store_a), {**form_data(store_a, email_enabled="on"), "active_tab": "general"}
    )
    assert response.context["active_tab"] == "email"
    email_link = re.search(r'<a href="#tab-email"[^>]*>', response.text)
    assert email_link and "tab-has-errors" in email_link.group(0)
    general_link = re.search(r'<a href="#tab-general"[^>]*>', response.text)
    assert general_link and "tab-has-errors" not in general_link.group(0)


def test_a_store_admin_forged_email_report_is_ignored(store_a: Store, admin_a: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    response = post(client_for(admin_a), store_a, email_report=letter.pk)
    assert response.status_code == 302
    store_a.refresh_from_db()
    assert store_a.email_report is None


def test_a_store_admin_cannot_clear_the_email_report_support_set(store_a: Store, admin_a: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    Store.objects.filter(pk=store_a.pk).update(email_report=letter)
    store_a.refresh_from_db()
    data = form_data(store_a)
    data.pop("email_report")
    assert client_for(admin_a).post(edit_url(store_a), data).status_code == 302
    store_a.refresh_from_db()
    assert store_a.email_report == letter


def test_support_sets_the_email_report(store_a: Store, support: User) -> None:
    letter = ReportFormat.objects.get(code="invoice-letter")
    assert post(client_for(support), store_a, email_report=letter.pk).status_code == 302
    store_a.refresh_from_db()
    assert store_a.email_report == letter


def test_support_sees_the_email_report_enabled_and_others_disabled(
    store_a: Store, admin_a: User, support: User
) -> None:
    def select(user: User) -> str:
        html = client_for(user).get(edit_url(store_a)).text
        return re.search(r'<select name="email_report"[^>]*>', html).group(0)  # type: ignore[union-attr]

    assert "disabled" in select(admin_a)
    assert "disabled" not in select(support)


def test_email_settings_changes_are_recorded_and_shown(store_a: Store, admin_a: User, support: User) -> None:
    post(client_for(admin_a), store_a, email_enabled="on", reply_to="r@a.example", phone="2222-0000")
    letter = ReportFormat.objects.get(code="invoice-letter")
    store_a.refresh_from_db()
    post(client_for(support), store_a, email_report=letter.pk)

    changes = list(
        StoreEmailSettingsChange.objects.order_by("id").values_list(
            "changed_by__username", "field", "old_value", "new_value"
        )
    )
    assert changes == [
        ("admin_a", "email_enabled", "off", "on"),
        ("admin_a", "reply_to", "", "r@a.example"),
        ("support", "email_report", "", "invoice-letter"),
    ]
    history = client_for(admin_a).get(edit_url(store_a)).text.split('id="email-settings-history"', 1)[1]
    assert "Correo de Respuesta" in history
    assert "r@a.example" in history
    assert "Factura tamaño carta" in history
    assert "Igual que el reporte de impresión" in history


def test_saving_without_changes_records_nothing(store_a: Store, admin_a: User) -> None:
    post(client_for(admin_a), store_a)
    assert not StoreEmailSettingsChange.objects.exists()


def test_a_logo_can_be_uploaded(store_a: Store, admin_a: User, settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "green").save(png, format="PNG")
    data = {**form_data(store_a), "logo": SimpleUploadedFile("logo.png", png.getvalue(), content_type="image/png")}
    assert client_for(admin_a).post(edit_url(store_a), data).status_code == 302
    store_a.refresh_from_db()
    assert (store_a.logo.name or "").startswith("store-logos/logo")


def test_the_stores_window_links_to_edit_and_shows_sending_and_print_report(store_a: Store, admin_a: User) -> None:
    html = client_for(admin_a).get(reverse("stores:list")).text
    assert edit_url(store_a) in html
    assert "Apagado" in html


# --- Who may see or change a store's settings -----------------------------------------------------------


def store_urls(store: Store) -> list[tuple[str, str]]:
    return [
        ("get", reverse("stores:list")),
        ("get", edit_url(store)),
        ("post", edit_url(store)),
        ("post", reverse("mailer:store_test_email", args=[store.pk])),
    ]


@pytest.mark.parametrize("actor", ["cashier", "other_business_admin", "anonymous"])
def test_outsiders_can_neither_see_nor_change_a_store(
    actor: str, store_a: Store, cashier_a: User, admin_b: User, smtp_server: Any
) -> None:
    user = {"cashier": cashier_a, "other_business_admin": admin_b, "anonymous": None}[actor]
    client = client_for(user)
    for method, url in store_urls(store_a):
        if actor == "other_business_admin" and url == reverse("stores:list"):
            response = client.get(url)
            assert response.status_code == 200
            assert store_a.name not in response.text
            continue
        response = getattr(client, method)(
            url, form_data(store_a, name="Hacked", email_enabled="on", reply_to="x@x.com")
        )
        assert response.status_code in (302, 404), (method, url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login"))
    store_a.refresh_from_db()
    assert store_a.name == "Tienda A1"
    assert store_a.email_enabled is False
    assert smtp_server.messages == []


def test_a_logo_too_large_for_the_invoices_is_refused(
    store_a: Store, admin_a: User, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    png = io.BytesIO()
    Image.effect_noise((700, 700), 100).convert("RGB").save(png, format="PNG")
    assert png.tell() > 512 * 1024
    data = {**form_data(store_a), "logo": SimpleUploadedFile("big.png", png.getvalue(), content_type="image/png")}
    response = client_for(admin_a).post(edit_url(store_a), data)
    assert response.status_code == 200
    assert "512 KB" in response.text
    store_a.refresh_from_db()
    assert not store_a.logo
