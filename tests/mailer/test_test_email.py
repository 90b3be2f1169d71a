"""The "Send test email" button of a store's email settings tab: a sample invoice through the
invoice emails' pipeline (a delivery row, a real Celery worker on Redis, WeasyPrint), to a
real SMTP server."""

import io
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation
from pypdf import PdfReader
from pytest_django import Settings

from accounts.models import User
from invoices.models import ReportFormat
from mailer.models import Delivery, DeliveryRecipient
from mailer.selectors import TestEmailStatus, store_test_email_status
from mailer.services import store_test_email_send
from stores.models import Store
from tests.conftest import client_for
from tests.mailer.test_delivery import pdf_attachment, wait_for
from tests.smtp import SMTPTestServer

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker", "built_in_report_formats"),
]


@pytest.fixture
def email_settings(store_a: Store) -> Store:
    store_a.email_enabled = True
    store_a.reply_to = "facturacion@a.example"
    store_a.copy_to = "contabilidad@a.example; gerencia@a.example"
    store_a.save()
    return store_a


def settled(user: User, delivery_id: int) -> TestEmailStatus:
    """The test email's status once the worker has settled it, worded in English."""
    wait_for(
        lambda: Delivery.objects.filter(pk=delivery_id, state__in=["sent", "failed"]).exists(),
        what=f"test email {delivery_id} to be sent or to fail",
    )
    with translation.override("en"):
        status = store_test_email_status(user=user, delivery_id=delivery_id)
    assert status is not None
    return status


def send(store: Store, user: User) -> TestEmailStatus:
    """The service, then what its sender sees once the worker is done with it."""
    return settled(user, store_test_email_send(store=store, user=user).pk)


def accepted(status: TestEmailStatus) -> list[str]:
    return [r.address for r in status.delivery.recipients.all() if r.state == DeliveryRecipient.State.SENT]


def refused(status: TestEmailStatus) -> list[tuple[str, int | None, str]]:
    return [
        (r.address, r.smtp_code, r.smtp_reply)
        for r in status.delivery.recipients.all()
        if r.state == DeliveryRecipient.State.FAILED
    ]


def send_test_email(
    user: User | None, store: Store, *, client: Client | None = None, language: str = "en", htmx: bool = False
) -> "Response":
    """Press the button as ``user``, on a page in ``language``, with or without htmx."""
    headers = {"accept-language": language, **({"hx-request": "true"} if htmx else {})}
    client = client or client_for(user)
    return client.post(reverse("mailer:store_test_email", args=[store.pk]), headers=headers)


def flashed(response: "Response") -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def the_test_email() -> Delivery:
    return Delivery.objects.get(kind=Delivery.Kind.TEST)


# --- What arrives -------------------------------------------------------------------------


def test_it_arrives_to_the_user_from_the_store_with_the_stores_reply_to(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    result = send(email_settings, admin_a)

    assert result.ok, result.message
    (received,) = smtp_server.messages
    assert received.header_addresses("To") == ["admin_a@example.com"]
    assert received.header_addresses("Reply-To") == ["facturacion@a.example"]
    (sender,) = received.message["From"].addresses
    assert sender.display_name == "Tienda A1"
    assert sender.addr_spec == "facturas@finanzapro.local"  # DEFAULT_FROM_EMAIL's address, not its name
    assert received.envelope_sender == "facturas@finanzapro.local"


def test_copies_are_only_envelope_recipients_and_no_bcc_header_reveals_them(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    result = send(email_settings, admin_a)

    (received,) = smtp_server.messages
    assert received.envelope_recipients == ["admin_a@example.com", "contabilidad@a.example", "gerencia@a.example"]
    assert received.message["Bcc"] is None
    assert received.header_addresses("To") == ["admin_a@example.com"]
    assert received.message["Cc"] is None
    assert accepted(result) == ["admin_a@example.com", "contabilidad@a.example", "gerencia@a.example"]


def test_replies_go_to_the_store_email_when_no_reply_to_is_set(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    send(store_a, admin_a)

    (received,) = smtp_server.messages
    assert received.header_addresses("Reply-To") == ["a1@a.example"]


def test_a_store_name_with_a_comma_and_accents_stays_one_valid_sender(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    store_a.name = 'Café "El Güero", S.A.'
    store_a.save()

    result = send(store_a, admin_a)

    assert result.ok, result.message
    (received,) = smtp_server.messages
    (sender,) = received.message["From"].addresses  # one address, not split at the comma
    assert sender.display_name == 'Café "El Güero", S.A.'
    assert sender.addr_spec == "facturas@finanzapro.local"
    assert not received.message["From"].defects


def test_the_email_says_it_is_a_test_and_lists_the_saved_settings(
    smtp_server: SMTPTestServer, admin_b: User, store_b: Store
) -> None:
    admin_b.language = "en"
    admin_b.save()
    store_b.reply_to = "replies@b.example"
    store_b.copy_to = "books@b.example"
    store_b.email_report = ReportFormat.objects.get(code="pos-ticket-80mm")
    store_b.save()

    send(store_b, admin_b)

    (received,) = smtp_server.messages
    for body in (received.text, received.html):
        assert "This is a test email." in body
        assert "Tienda B1" in body
        assert "replies@b.example" in body
        assert "books@b.example" in body
        assert ReportFormat.objects.get(code="pos-ticket-80mm").name_en in body
        assert "off; customers get no invoice emails until it is turned on" in body


def test_only_saved_settings_are_used(smtp_server: SMTPTestServer, admin_a: User, email_settings: Store) -> None:
    email_settings.reply_to = "not-saved@a.example"  # changed on the instance, never saved

    send(Store.objects.get(pk=email_settings.pk), admin_a)

    (received,) = smtp_server.messages
    assert received.header_addresses("Reply-To") == ["facturacion@a.example"]


@pytest.mark.parametrize(
    ("language", "subject"), [("es", "Correo de prueba de Tienda A1"), ("en", "Test email from Tienda A1")]
)
def test_the_subject_is_in_the_users_language(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store, language: str, subject: str
) -> None:
    admin_a.language = language
    admin_a.save()

    # The page around the button is in Spanish; the email follows the user's own choice.
    send_test_email(admin_a, store_a, language="es")
    settled(admin_a, the_test_email().pk)

    (received,) = smtp_server.messages
    assert received.message["Subject"] == subject
    assert f'<html lang="{language}">' in received.html


# --- What goes wrong, in plain words ------------------------------------------------------


def test_a_refused_copy_is_reported_with_the_code_and_the_address_while_the_user_still_gets_it(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    admin_a.language = "en"
    admin_a.save()
    smtp_server.refuse("gerencia@a.example", 550, "5.1.1 User unknown")

    result = send(email_settings, admin_a)

    assert result.delivery.state == Delivery.State.SENT and not result.ok
    assert refused(result) == [("gerencia@a.example", 550, "5.1.1 User unknown")]
    assert "gerencia@a.example" not in accepted(result)
    assert result.message == (
        "Test email sent to admin_a@example.com, contabilidad@a.example. "
        "The mail server rejected the address gerencia@a.example (550 5.1.1 User unknown). "
        "Check that it is spelled correctly."
    )
    (received,) = smtp_server.messages
    assert received.envelope_recipients == ["admin_a@example.com", "contabilidad@a.example"]


def test_a_temporarily_refused_recipient_is_reported_as_try_again_later(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    smtp_server.refuse("contabilidad@a.example", 451, "4.2.1 Mailbox busy")

    result = send(email_settings, admin_a)

    assert refused(result) == [("contabilidad@a.example", 451, "4.2.1 Mailbox busy")]
    assert "temporarily refused contabilidad@a.example (451 4.2.1 Mailbox busy). Try again later." in result.message


def test_when_every_recipient_is_refused_nothing_is_sent_and_each_refusal_is_reported(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    smtp_server.refuse_all(550, "5.7.1 Relaying denied")

    result = send(email_settings, admin_a)

    assert result.delivery.state == Delivery.State.FAILED
    assert [address for address, _code, _reply in refused(result)] == [
        "admin_a@example.com",
        "contabilidad@a.example",
        "gerencia@a.example",
    ]
    assert "rejected the address admin_a@example.com (550 5.7.1 Relaying denied)" in result.message
    assert smtp_server.messages == []


def test_a_server_that_is_down_gives_a_plain_words_error(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    smtp_server.stop()

    result = send(store_a, admin_a)

    assert result.delivery.state == Delivery.State.FAILED
    assert result.message.startswith("Could not connect to the mail server: it is down or unreachable.")


def test_a_stalled_server_gives_a_timeout_error_instead_of_hanging(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    smtp_server.stall(10)  # the mailer gives up after 2 s

    result = send(store_a, admin_a)

    assert result.delivery.state == Delivery.State.FAILED
    assert result.message.startswith("The mail server did not answer in time")
    assert smtp_server.messages == []


def test_wrong_mail_server_credentials_give_an_authentication_error_with_the_code(
    smtp_server: SMTPTestServer, settings: Settings, admin_a: User, store_a: Store
) -> None:
    smtp_server.require_login("finanzapro", "right-password")
    settings.MAILERS = {"default": smtp_server.mailer(username="finanzapro", password="wrong-password")}

    result = send(store_a, admin_a)

    assert result.delivery.state == Delivery.State.FAILED
    assert "did not accept FinanzaPro's user name or password (535 5.7.8 Authentication credentials invalid)" in (
        result.message
    )
    assert smtp_server.messages == []


def test_right_mail_server_credentials_are_used(
    smtp_server: SMTPTestServer, settings: Settings, admin_a: User, store_a: Store
) -> None:
    smtp_server.require_login("finanzapro", "right-password")
    settings.MAILERS = {"default": smtp_server.mailer(username="finanzapro", password="right-password")}

    assert send(store_a, admin_a).ok
    assert len(smtp_server.messages) == 1


def test_a_user_without_an_email_address_is_told_so_and_nothing_is_sent(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    admin_a.email = ""
    admin_a.save()

    with translation.override("en"):
        with pytest.raises(ValidationError) as refused_error:
            store_test_email_send(store=store_a, user=admin_a)
        message = str(refused_error.value.message)

    assert refused_error.value.code == "no_address"
    assert message.startswith("Your user account has no email address")
    assert not Delivery.objects.exists()
    assert smtp_server.messages == []


# --- Through the invoice emails' pipeline ------------------------------------------------


def test_it_is_a_delivery_sent_by_the_worker_with_a_sample_invoice_pdf_in_the_users_language(
    smtp_server: SMTPTestServer, admin_a: User, email_settings: Store
) -> None:
    admin_a.language = "en"
    admin_a.save()

    result = send(email_settings, admin_a)

    delivery = result.delivery
    assert (delivery.kind, delivery.invoice, delivery.state) == ("test", None, "sent")
    assert delivery.attempts.get().outcome == "accepted"
    (received,) = smtp_server.messages
    assert received.message["Message-ID"] == delivery.message_id
    name, text = pdf_attachment(received)
    assert name == "Sample-invoice.pdf"
    assert "Tienda A1" in text
    assert "SAMPLE" in text.upper()  # the sample's mark: no real invoice number


def test_the_pdf_is_made_with_the_stores_email_report(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    store_a.email_report = ReportFormat.objects.get(code="pos-ticket-80mm")
    store_a.save()

    result = send(store_a, admin_a)

    assert result.ok, result.message
    assert result.delivery.report_format == store_a.email_report
    (part,) = list(smtp_server.messages[0].message.iter_attachments())
    assert part.get_filename() == "Factura-de-muestra.pdf"  # admin_a reads Spanish
    payload = part.get_content()
    (first_page, *_rest) = PdfReader(io.BytesIO(payload)).pages
    assert round(float(first_page.mediabox.width), 2) == 226.77  # 80 mm


def test_a_broken_email_report_is_reported_and_the_print_report_goes_instead(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    broken = ReportFormat.objects.create(
        code="broken", name_es="Rota", name_en="Broken", template_name="reports/does-not-exist.html"
    )
    Store.objects.filter(pk=store_a.pk).update(email_report=broken)  # as a wrong value left by hand

    result = send(Store.objects.get(pk=store_a.pk), admin_a)

    assert result.delivery.state == Delivery.State.SENT and not result.ok
    assert "The store's email report could not be used, so the print report was attached instead" in result.message
    assert result.delivery.report_format is not None and result.delivery.report_format.code == "invoice-letter"
    (received,) = smtp_server.messages
    assert "El reporte para correos de la tienda está dañado" in received.text
    assert pdf_attachment(received)[0] == "Factura-de-muestra.pdf"


def test_nothing_is_retried_and_nobody_else_is_told(smtp_server: SMTPTestServer, admin_a: User, store_a: Store) -> None:
    store_a.failure_contacts = "duena@a.example"
    store_a.save()
    smtp_server.refuse("admin_a@example.com", 451, "4.2.1 Mailbox busy")

    result = send(store_a, admin_a)

    assert result.delivery.state == Delivery.State.FAILED
    assert result.delivery.attempts.count() == 1
    assert "temporarily refused admin_a@example.com (451 4.2.1 Mailbox busy). Try again later." in result.message
    assert not result.delivery.notices.exists()
    assert smtp_server.messages == []


def test_test_emails_stay_off_the_correos_pages(smtp_server: SMTPTestServer, admin_a: User, store_a: Store) -> None:
    send(store_a, admin_a)

    html = client_for(admin_a).get(reverse("mailer:store_deliveries", args=[store_a.pk])).content.decode()

    assert "admin_a@example.com" not in html


# --- The button ---------------------------------------------------------------------------


def test_the_button_leads_to_a_status_page_that_reloads_until_the_answer(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    response = send_test_email(admin_a, store_a, client=client)

    delivery = the_test_email()
    assert response.status_code == 302
    assert response["Location"] == reverse("mailer:test_email", args=[delivery.pk])
    settled(admin_a, delivery.pk)
    page = client.get(response["Location"], headers={"accept-language": "en"}).content.decode()
    assert "Test email sent to admin_a@example.com." in page
    assert 'http-equiv="refresh"' not in page  # settled: nothing left to wait for
    assert f'href="/stores/{store_a.pk}/edit/?tab=email"' in page
    assert len(smtp_server.messages) == 1


def test_the_status_page_reloads_itself_while_the_email_is_on_its_way(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    Delivery.objects.all().delete()
    delivery = store_test_email_send(store=store_a, user=admin_a)
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING)  # as the worker holds it

    page = client.get(reverse("mailer:test_email", args=[delivery.pk]), headers={"accept-language": "en"})

    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="2">' in html
    assert "Sending the test email to admin_a@example.com…" in html


def test_a_failure_shows_on_the_status_page(smtp_server: SMTPTestServer, admin_a: User, store_a: Store) -> None:
    smtp_server.refuse("admin_a@example.com", 550, "5.1.1 User unknown")
    client = client_for(admin_a)

    response = send_test_email(admin_a, store_a, client=client)
    settled(admin_a, the_test_email().pk)

    html = client.get(response["Location"], headers={"accept-language": "en"}).content.decode()
    assert 'class="status-box failed"' in html
    assert "admin_a@example.com (550 5.1.1 User unknown)" in html


def test_an_htmx_request_gets_a_status_box_that_polls_until_the_answer(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    response = send_test_email(admin_a, store_a, client=client, htmx=True)

    assert response.status_code == 200
    html = response.content.decode()
    status_url = reverse("mailer:test_email", args=[the_test_email().pk])
    assert "<html" not in html
    assert flashed(response) == []
    if 'class="status-box pending"' in html:  # the worker may already have sent it
        assert f'hx-get="{status_url}" hx-trigger="every 1s"' in html

    settled(admin_a, the_test_email().pk)
    box = client.get(status_url, headers={"hx-request": "true", "accept-language": "en"}).content.decode()
    assert 'class="status-box ok" role="status"' in box
    assert "Test email sent to admin_a@example.com." in box
    assert "hx-get" not in box  # settled: the polling stops
    assert "<html" not in box


def test_an_htmx_request_shows_a_failure_in_the_status_box(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    smtp_server.stop()
    client = client_for(admin_a)
    send_test_email(admin_a, store_a, client=client, htmx=True)
    status_url = reverse("mailer:test_email", args=[the_test_email().pk])

    settled(admin_a, the_test_email().pk)
    box = client.get(status_url, headers={"hx-request": "true", "accept-language": "en"}).content.decode()
    assert 'class="status-box failed" role="status"' in box
    assert "Could not connect to the mail server" in box


def test_a_user_without_an_address_is_told_on_the_email_tab(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    admin_a.email = ""
    admin_a.save()

    response = send_test_email(admin_a, store_a)

    assert response["Location"] == f"/stores/{store_a.pk}/edit/?tab=email"
    ((level, text),) = flashed(response)
    assert (level, text.split(",")[0]) == ("error", "Your user account has no email address")


def test_support_can_test_any_businesss_store(smtp_server: SMTPTestServer, support: User, store_b: Store) -> None:
    assert send_test_email(support, store_b).status_code == 302
    settled(support, the_test_email().pk)
    assert smtp_server.envelope_recipients == ["support@example.com"]


def test_it_only_accepts_post(smtp_server: SMTPTestServer, admin_a: User, store_a: Store) -> None:
    response = client_for(admin_a).get(reverse("mailer:store_test_email", args=[store_a.pk]))

    assert response.status_code == 405
    assert smtp_server.messages == []


def test_only_its_sender_sees_a_test_emails_status(
    smtp_server: SMTPTestServer, admin_a: User, admin_b: User, cashier_a: User, support: User, store_a: Store
) -> None:
    delivery = store_test_email_send(store=store_a, user=admin_a)
    status_url = reverse("mailer:test_email", args=[delivery.pk])

    assert client_for(admin_a).get(status_url).status_code == 200
    for outsider in (admin_b, cashier_a, support):
        assert client_for(outsider).get(status_url).status_code == 404
    response = client_for(None).get(status_url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- Who may press it, and how often ------------------------------------------------------


@pytest.fixture
def frozen_rate_limit_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """django-ratelimit's hourly windows end at a fixed second; a test must not straddle one."""
    from django_ratelimit import core

    now = core.time.time()
    monkeypatch.setattr(core, "time", SimpleNamespace(time=lambda: now))
    yield


@pytest.mark.usefixtures("frozen_rate_limit_window")
def test_the_sixth_request_within_the_hour_is_refused_and_sends_nothing(
    smtp_server: SMTPTestServer, admin_a: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    for _ in range(5):
        send_test_email(admin_a, store_a, client=client)
    wait_for(lambda: len(smtp_server.messages) == 5, what="the five test emails")

    response = send_test_email(admin_a, store_a, client=client, htmx=True)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="status-box failed"' in html
    assert "You can send 5 test emails per hour and have reached that limit; nothing was sent." in html
    assert Delivery.objects.count() == 5
    assert len(smtp_server.messages) == 5


@pytest.mark.usefixtures("frozen_rate_limit_window")
def test_the_limit_is_counted_per_user(
    smtp_server: SMTPTestServer, admin_a: User, support: User, store_a: Store
) -> None:
    client = client_for(admin_a)
    for _ in range(6):
        send_test_email(admin_a, store_a, client=client)

    response = send_test_email(support, store_a)

    assert response.status_code == 302 and flashed(response) == []
    sent_by_support = Delivery.objects.get(requested_by=support)
    assert response["Location"] == reverse("mailer:test_email", args=[sent_by_support.pk])
    assert settled(support, sent_by_support.pk).message == "Test email sent to support@example.com."
    wait_for(lambda: len(smtp_server.messages) == 6, what="six test emails")


def test_a_cashier_gets_404_and_nothing_is_sent(smtp_server: SMTPTestServer, cashier_a: User, store_a: Store) -> None:
    assert send_test_email(cashier_a, store_a).status_code == 404
    assert smtp_server.messages == []


def test_another_business_gets_404_and_nothing_is_sent(
    smtp_server: SMTPTestServer, admin_b: User, store_a: Store
) -> None:
    assert send_test_email(admin_b, store_a).status_code == 404
    assert smtp_server.messages == []


def test_anonymous_is_sent_to_sign_in_and_nothing_is_sent(smtp_server: SMTPTestServer, store_a: Store) -> None:
    response = send_test_email(None, store_a)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert smtp_server.messages == []
