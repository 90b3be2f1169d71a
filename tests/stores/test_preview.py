""" "Preview" on the store's Edit page: a sample invoice of the store in a report format, as a PDF."""

import importlib
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from invoices.models import ReportFormat
from stores.models import Store
from tests.conftest import client_for
from tests.invoices.test_pdf_view import broken_format
from tests.stores.test_browser_store_edit import sign_in

pytestmark = pytest.mark.django_db


def preview(client: Client, store: Store, report_format: ReportFormat | int | str, language: str = "es") -> Any:
    format_id = report_format.pk if isinstance(report_format, ReportFormat) else report_format
    return client.get(reverse("stores:preview", args=[store.pk]), {"format": format_id, "language": language})


def letter() -> ReportFormat:
    return ReportFormat.objects.get(code="invoice-letter")


def switched_off(**fields: Any) -> ReportFormat:
    template_name = letter().template_name
    return ReportFormat.objects.create(
        code="old-letter", name_es="Carta vieja", name_en="Old letter", template_name=template_name,
        page_size=ReportFormat.PageSize.LETTER, is_active=False, **fields,
    )  # fmt: skip


def assert_is_pdf(response: Any) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline;")
    assert response.content.startswith(b"%PDF")


@pytest.mark.parametrize("language", ["es", "en"])
def test_a_store_admin_previews_a_format_in_either_language(store_a: Store, admin_a: User, language: str) -> None:
    assert_is_pdf(preview(client_for(admin_a), store_a, letter(), language))


def test_support_previews_any_store(store_b: Store, support: User) -> None:
    assert_is_pdf(preview(client_for(support), store_b, ReportFormat.objects.get(code="pos-ticket-80mm")))


def test_an_unknown_language_shows_the_spanish_sample(store_a: Store, admin_a: User) -> None:
    assert_is_pdf(preview(client_for(admin_a), store_a, letter(), language="fr"))


def test_it_validates_ownership(store_a: Store, admin_a: User, cashier_a: User, admin_b: User) -> None:
    assert preview(client_for(admin_b), store_a, letter()).status_code == 404  # another business
    # Cashiers do not manage stores, not even their own.
    assert preview(client_for(cashier_a), store_a, letter()).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(store_a: Store) -> None:
    response = preview(client_for(None), store_a, letter())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("format_id", ["999999", "", "abc"])
def test_a_format_that_does_not_exist_is_404(store_a: Store, admin_a: User, format_id: str) -> None:
    assert preview(client_for(admin_a), store_a, format_id).status_code == 404


def test_only_support_previews_a_switched_off_format(store_a: Store, admin_a: User, support: User) -> None:
    old = switched_off()
    assert preview(client_for(admin_a), store_a, old).status_code == 404
    assert_is_pdf(preview(client_for(support), store_a, old))


def test_a_store_admin_previews_the_switched_off_format_their_store_still_uses(
    store_a: Store, store_a2: Store, admin_a: User
) -> None:
    old = switched_off()
    Store.objects.filter(pk=store_a.pk).update(print_report=old)
    assert_is_pdf(preview(client_for(admin_a), store_a, old))
    assert preview(client_for(admin_a), store_a2, old).status_code == 404


def test_a_format_that_cannot_render_gets_an_explanation_not_a_crash(store_a: Store, support: User) -> None:
    broken = broken_format("reports/does-not-exist.html")
    client = client_for(support)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    response = preview(client, store_a, broken)
    assert response.status_code == 422
    assert response.context["reason"]
    assert escape(response.context["reason"]) in response.text
    assert "“Broken format”" in response.text
    assert reverse("stores:edit", args=[store_a.pk]) in response.text


def preview_hrefs(html: str, field: str) -> list[str]:
    return re.findall(rf'<a class="button" href="([^"]+)"[^>]*data-testid="preview-{field}-\w+"', html)


def test_the_edit_page_previews_the_reports_the_store_uses(store_a: Store, admin_a: User) -> None:
    pos = ReportFormat.objects.get(code="pos-ticket-80mm")
    Store.objects.filter(pk=store_a.pk).update(print_report=pos)
    html = client_for(admin_a).get(reverse("stores:edit", args=[store_a.pk])).text
    url = reverse("stores:preview", args=[store_a.pk])
    assert preview_hrefs(html, "print_report") == [
        f"{url}?format={pos.pk}&amp;language={lang}" for lang in ("es", "en")
    ]
    # A blank email report means "same as the print report".
    assert preview_hrefs(html, "email_report") == preview_hrefs(html, "print_report")
    assert 'data-preview-select="id_email_report"' in html
    assert 'data-preview-blank-select="id_print_report"' in html
    assert "js/report-preview.js" in html


def test_a_blank_print_report_previews_the_default_format(store_a: Store, support: User) -> None:
    a4 = ReportFormat.objects.get(code="invoice-a4")
    Store.objects.filter(pk=store_a.pk).update(email_report=a4)
    html = client_for(support).get(reverse("stores:edit", args=[store_a.pk])).text
    assert f"?format={letter().pk}&amp;language=es" in preview_hrefs(html, "print_report")[0]
    assert f"?format={a4.pk}&amp;language=es" in preview_hrefs(html, "email_report")[0]
    assert f'data-preview-blank="{letter().pk}"' in html


def test_every_preview_link_of_the_edit_page_answers_a_pdf(store_a: Store, admin_a: User) -> None:
    client = client_for(admin_a)
    html = client.get(reverse("stores:edit", args=[store_a.pk])).text
    hrefs = preview_hrefs(html, "print_report") + preview_hrefs(html, "email_report")
    assert len(hrefs) == 4
    for href in hrefs:
        assert_is_pdf(client.get(href.replace("&amp;", "&")))


def previewed_format(page: Page, testid: str) -> int:
    href = page.get_by_test_id(testid).get_attribute("href") or ""
    return int(parse_qs(urlsplit(href).query)["format"][0])


@pytest.fixture
def built_in_formats() -> None:
    """The formats of the data migration, back in the tables that an earlier transactional test
    emptied (serialized_rollback cannot restore them once Playwright has started)."""
    migration = importlib.import_module("invoices.migrations.0003_builtin_report_formats")
    for row in migration.BUILT_IN:
        ReportFormat.objects.update_or_create(code=row["code"], defaults=row)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_preview_links_follow_the_option_chosen_before_saving(
    built_in_formats: None, page: Page, live_server: LiveServer, support: User, store_a: Store
) -> None:
    default, pos, a4 = (
        ReportFormat.objects.get(code=code) for code in ("invoice-letter", "pos-ticket-80mm", "invoice-a4")
    )
    sign_in(page, live_server, "support")
    page.goto(f"{live_server.url}{reverse('stores:edit', args=[store_a.pk])}?tab=print")
    assert previewed_format(page, "preview-print_report-es") == default.pk

    page.locator("#id_print_report").select_option(str(pos.pk))
    assert previewed_format(page, "preview-print_report-es") == pos.pk
    assert previewed_format(page, "preview-print_report-en") == pos.pk
    # "Same as the print report" previews the print report as chosen.
    assert previewed_format(page, "preview-email_report-es") == pos.pk

    page.get_by_role("tab", name="Enviar Facturas por Email").click()
    page.locator("details.advanced summary").click()
    page.locator("#id_email_report").select_option(str(a4.pk))
    assert previewed_format(page, "preview-email_report-es") == a4.pk
    page.locator("#id_email_report").select_option("")
    assert previewed_format(page, "preview-email_report-es") == pos.pk

    link = page.get_by_test_id("preview-email_report-en")
    expect(link).to_have_attribute("target", "_blank")
    response = page.request.get(link.get_attribute("href") or "")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")
