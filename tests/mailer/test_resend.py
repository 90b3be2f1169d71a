"""Resending an invoice's email: a new delivery, through the same pipeline (a real Celery worker
on Redis, a real SMTP server), from the invoice page or the POS API; who may, and where to.

A resend is an explicit request of a person: it goes out even when the store's sending is
off or the customer did not ask for invoices by email, but never to the walk-in customer
without an address typed for it.
"""

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from accounts.models import User
from invoices.models import Customer, Invoice
from invoices.services import LineData, invoice_create, invoice_void, walk_in_customer_get
from mailer.models import Delivery
from mailer.services import delivery_resend
from mailer.views import RESENDS_PER_HOUR
from stores.models import Store
from tests.conftest import client_for
from tests.invoices.test_api import api_client, assert_follows_schema
from tests.mailer.test_delivery import (
    COPIES,
    CUSTOMER,
    apply_invoice,
    emailing_store,
    finished,
    messages_to,
    short_retries,
    wait_for,
)
from tests.smtp import SMTPTestServer

__all__ = ["emailing_store", "short_retries"]  # fixtures shared with test_delivery

HTMX = {"HX-Request": "true"}
real_worker = pytest.mark.django_db(transaction=True)


def english(client: Client) -> Client:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def resend_url(invoice: Invoice) -> str:
    return reverse("mailer:invoice_resend", args=[invoice.pk])


def api_resend_url(invoice: Invoice) -> str:
    return f"/api/v1/invoices/{invoice.pk}/resend/"


def sent(delivery_id: int) -> Delivery:
    return wait_for(
        lambda: Delivery.objects.filter(pk=delivery_id, state="sent").first(), what=f"delivery {delivery_id} sent"
    )


def newest(invoice: Invoice) -> Delivery:
    delivery = Delivery.objects.filter(invoice=invoice).first()
    assert delivery is not None
    return delivery


@pytest.fixture
def other_cashier(business_a: Any, store_a: Store) -> User:
    """A second cashier of store A1, who did not apply the invoices of these tests."""
    user = User.objects.create_user(
        username="cashier_a_bis", password="secret-pass-123", business=business_a, role=User.Role.CASHIER
    )
    user.stores.add(store_a)
    return user


# --- Through the real pipeline ----------------------------------------------------------------


@real_worker
def test_a_resend_is_a_new_delivery_and_one_more_message_reaches_the_customer(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    first = finished(invoice)
    assert len(smtp_server.messages) == 1

    client = english(client_for(cashier_a))
    response = client.post(resend_url(invoice))

    assert response.status_code == 302
    assert response["Location"] == reverse("invoices:detail", args=[invoice.pk]) + "#email-status"
    second = newest(invoice)
    assert second.pk != first.pk
    assert second.requested_by == cashier_a
    sent(second.pk)
    assert len(smtp_server.messages) == 2
    received = smtp_server.messages[1]
    assert received.header_addresses("To") == [CUSTOMER]
    assert received.envelope_recipients == [CUSTOMER, *COPIES]  # the store's copies, as for every email
    assert received.message["Message-ID"] == second.message_id != first.message_id
    assert Delivery.objects.get(pk=first.pk).state == Delivery.State.SENT  # history is kept
    # The page said so.
    page = client.get(response["Location"])
    assert "The invoice will be emailed again to cliente@a.example." in page.text


@real_worker
def test_a_resend_to_other_addresses_goes_there_and_not_to_the_customer(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, admin_a: User
) -> None:
    invoice = apply_invoice(emailing_store, customer_a, admin_a)
    finished(invoice)

    response = english(client_for(admin_a)).post(
        resend_url(invoice), {"to": " Contador@Otra.example, pagos@otra.example; "}, headers=HTMX
    )

    assert response.status_code == 200
    assert "The invoice will be emailed again to contador@otra.example, pagos@otra.example." in response.text
    assert 'hx-trigger="every 2s"' in response.text  # the panel follows the new email
    delivery = sent(newest(invoice).pk)
    assert delivery.to_addresses == ["contador@otra.example", "pagos@otra.example"]
    received = smtp_server.messages[-1]
    assert received.header_addresses("To") == ["contador@otra.example", "pagos@otra.example"]
    assert CUSTOMER not in received.envelope_recipients
    assert len(messages_to(smtp_server, CUSTOMER)) == 1  # only the first email


@real_worker
@pytest.mark.parametrize("situation", ["sending off", "opted out"])
def test_a_resend_goes_out_even_when_the_invoice_was_not_emailed_on_apply(
    situation: str,
    celery_worker: Any,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    admin_a: User,
) -> None:
    if situation == "sending off":
        emailing_store.email_enabled = False
        emailing_store.save()
    else:
        customer_a.send_invoices_by_email = False
        customer_a.save()
    invoice = apply_invoice(emailing_store, customer_a, admin_a)
    assert newest(invoice).state == Delivery.State.SKIPPED

    delivery = delivery_resend(invoice=invoice, requested_by=admin_a, to=None)

    assert sent(delivery.pk).to_addresses == [CUSTOMER]
    (received,) = smtp_server.messages
    assert received.header_addresses("To") == [CUSTOMER]


@real_worker
def test_the_walk_in_customer_gets_a_resend_only_to_an_address_typed_for_it(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, cashier_a: User
) -> None:
    walk_in = walk_in_customer_get(business=emailing_store.business)
    walk_in.emails = CUSTOMER  # never used: the cash customer is anybody
    walk_in.save()
    invoice = apply_invoice(emailing_store, walk_in, cashier_a)
    client = english(client_for(cashier_a))

    refused = client.post(resend_url(invoice), {"to": ""}, headers=HTMX)
    assert "Enter an address: the walk-in customer has none." in refused.text
    assert Delivery.objects.filter(invoice=invoice).count() == 1  # the skipped one of the apply

    client.post(resend_url(invoice), {"to": "ana@example.com"}, headers=HTMX)
    assert sent(newest(invoice).pk).to_addresses == ["ana@example.com"]
    (received,) = smtp_server.messages
    assert received.header_addresses("To") == ["ana@example.com"]


# --- Where to, and who may ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_invalid_address_is_refused_and_nothing_is_created(
    store_a: Store, customer_a: Customer, admin_a: User
) -> None:
    invoice = apply_invoice(store_a, customer_a, admin_a)
    client = english(client_for(admin_a))
    response = client.post(resend_url(invoice), {"to": "ana@example.com; no-es-correo"})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert "“no-es-correo” is not a valid email address." in page.text
    assert Delivery.objects.filter(invoice=invoice).count() == 1

    with pytest.raises(ValidationError) as error:
        delivery_resend(invoice=invoice, requested_by=admin_a, to="ana@example.com\nBcc: x@evil.example")
    assert "to" in error.value.message_dict


@pytest.mark.django_db
def test_a_customer_without_an_address_needs_one_typed(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    customer_a.emails = ""
    customer_a.save()
    invoice = apply_invoice(store_a, customer_a, admin_a)
    with pytest.raises(ValidationError) as error:
        delivery_resend(invoice=invoice, requested_by=admin_a, to=None)
    assert error.value.message_dict == {"to": ["The customer has no email address: enter one."]}
    assert delivery_resend(invoice=invoice, requested_by=admin_a, to="ana@example.com").state == "queued"


@pytest.mark.django_db
def test_who_may_resend(
    store_a: Store,
    customer_a: Customer,
    cashier_a: User,
    other_cashier: User,
    admin_a: User,
    support: User,
    admin_b: User,
) -> None:
    invoice = apply_invoice(store_a, customer_a, cashier_a)
    button = 'data-testid="resend-email"'

    # The cashier who applied it, the business's store admins and support: the button, and it works.
    for user in (cashier_a, admin_a, support):
        client = client_for(user)
        assert button in client.get(reverse("invoices:detail", args=[invoice.pk])).text, user
        assert client.post(resend_url(invoice)).status_code == 302, user
    assert Delivery.objects.filter(invoice=invoice).count() == 4

    # Another cashier of the store sees the invoice and its emails, but may not send it again.
    client = client_for(other_cashier)
    page = client.get(reverse("invoices:detail", args=[invoice.pk]))
    assert page.status_code == 200
    assert button not in page.text
    assert client.post(resend_url(invoice)).status_code == 403
    with pytest.raises(PermissionDenied):
        delivery_resend(invoice=invoice, requested_by=other_cashier)

    # Another business: not found.
    assert client_for(admin_b).post(resend_url(invoice)).status_code == 404
    with pytest.raises(PermissionDenied):
        delivery_resend(invoice=invoice, requested_by=admin_b)
    assert Delivery.objects.filter(invoice=invoice).count() == 4


@pytest.mark.django_db
def test_only_an_applied_invoice_is_resent(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    draft = invoice_create(
        store=store_a, customer=customer_a, created_by=admin_a, lines=[LineData("Pan", Decimal(1), Decimal(400))]
    )
    assert client_for(admin_a).post(resend_url(draft)).status_code == 403
    with pytest.raises(ValidationError) as error:
        delivery_resend(invoice=draft, requested_by=admin_a)
    assert error.value.code == "not_applied"

    voided = invoice_void(invoice=apply_invoice(store_a, customer_a, admin_a), voided_by=admin_a, reason="Error")
    page = client_for(admin_a).get(reverse("invoices:detail", args=[voided.pk]))
    assert 'data-testid="resend-email"' not in page.text
    assert client_for(admin_a).post(resend_url(voided)).status_code == 403
    assert not Delivery.objects.filter(invoice__in=[draft, voided], state="queued").exists()


@pytest.mark.django_db
def test_resends_are_limited_per_user_and_hour(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    invoice = apply_invoice(store_a, customer_a, admin_a)
    client = english(client_for(admin_a))
    for _ in range(RESENDS_PER_HOUR):
        client.post(resend_url(invoice), headers=HTMX)
    assert Delivery.objects.filter(invoice=invoice).count() == 1 + RESENDS_PER_HOUR

    response = client.post(resend_url(invoice), headers=HTMX)
    assert f"You can resend {RESENDS_PER_HOUR} invoice emails per hour and have reached that limit" in response.text
    # The API shares the count.
    api = api_client(admin_a).post(api_resend_url(invoice))
    assert api.status_code == 429
    assert api.json()["code"] == "rate_limited"
    assert Delivery.objects.filter(invoice=invoice).count() == 1 + RESENDS_PER_HOUR


# --- The POS API -----------------------------------------------------------------------------


@real_worker
def test_an_api_resend_retried_with_the_same_key_creates_one_delivery_and_one_message(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    finished(invoice)
    client = api_client(cashier_a)

    first = client.post(api_resend_url(invoice), {"to": "pagos@otra.example"}, HTTP_IDEMPOTENCY_KEY="resend-1")
    retry = client.post(api_resend_url(invoice), {"to": "pagos@otra.example"}, HTTP_IDEMPOTENCY_KEY="resend-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    body = assert_follows_schema(first, "post", "/api/v1/invoices/{id}/resend/")
    assert retry.json() == body
    assert retry["Idempotent-Replayed"] == "true"
    assert (body["state"], body["to"]) == ("queued", ["pagos@otra.example"])
    assert Delivery.objects.filter(invoice=invoice).count() == 2
    sent(body["id"])
    wait_for(lambda: len(smtp_server.messages) >= 2, what="the resent message")
    assert [m.header_addresses("To") for m in smtp_server.messages] == [[CUSTOMER], ["pagos@otra.example"]]

    # The invoice's deliveries in the API, newest first, as the schema says.
    detail = client.get(f"/api/v1/invoices/{invoice.pk}/")
    deliveries = assert_follows_schema(detail, "get", "/api/v1/invoices/{id}/")["deliveries"]
    assert [(d["id"], d["state"]) for d in deliveries] == [(body["id"], "sent"), (deliveries[1]["id"], "sent")]
    assert deliveries[0]["recipients"][0] == {
        "address": "pagos@otra.example",
        "role": "to",
        "state": "sent",
        "smtp_code": None,
        "smtp_reply": "",
        "sent_at": deliveries[0]["sent_at"],
    }


@pytest.mark.django_db
def test_the_api_resend_refuses_what_the_page_refuses(
    store_a: Store, customer_a: Customer, cashier_a: User, other_cashier: User, admin_b: User
) -> None:
    invoice = apply_invoice(store_a, customer_a, cashier_a)
    walk_in_invoice = apply_invoice(store_a, walk_in_customer_get(business=store_a.business), cashier_a)
    draft = invoice_create(
        store=store_a, customer=customer_a, created_by=cashier_a, lines=[LineData("Pan", Decimal(1), Decimal(400))]
    )
    path = "/api/v1/invoices/{id}/resend/"

    no_address = api_client(cashier_a).post(api_resend_url(walk_in_invoice), {})
    assert no_address.status_code == 400
    assert no_address.json() == {"to": ["Enter an address: the walk-in customer has none."]}
    bad = api_client(cashier_a).post(api_resend_url(invoice), {"to": "no-es-correo"})
    assert bad.status_code == 400
    assert "to" in bad.json()
    not_applied = api_client(cashier_a).post(api_resend_url(draft))
    assert not_applied.status_code == 409
    assert assert_follows_schema(not_applied, "post", path)["code"] == "not_applied"
    forbidden = api_client(other_cashier).post(api_resend_url(invoice))
    assert forbidden.status_code == 403
    assert_follows_schema(forbidden, "post", path)
    hidden = api_client(admin_b).post(api_resend_url(invoice), HTTP_IDEMPOTENCY_KEY="x")
    assert hidden.status_code == 404
    assert "Cliente A" not in hidden.content.decode()
    assert Delivery.objects.filter(state="queued").count() == 0  # only the skipped ones of the applies


@pytest.mark.django_db
def test_the_schema_documents_the_resend_endpoint(store_a: Store) -> None:
    from tests.invoices.test_api import openapi_document

    operation = openapi_document()["paths"]["/api/v1/invoices/{id}/resend/"]["post"]
    assert "Idempotency-Key" in [parameter["name"] for parameter in operation["parameters"]]
    assert set(operation["responses"]) == {"201", "400", "403", "404", "409", "422", "429"}
