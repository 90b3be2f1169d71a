"""Applied invoices are emailed by a real Celery worker on Redis, to a real SMTP server.

Each test applies an invoice as a cashier would, lets the worker do its work, and looks at
what the SMTP server received and what the delivery rows say. Retries are made short with
settings; nothing waits a fixed time: the tests poll the database until a state is reached.
"""

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import weasyprint
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import transaction
from django.urls import reverse
from django_celery_results.models import TaskResult
from pypdf import PdfReader
from pytest_django import Settings

from accounts.models import User
from finanzapro.celery import app
from invoices import reports
from invoices.models import Customer, Invoice, InvoiceSequence, ReportFormat
from invoices.services import LineData, invoice_apply, invoice_create, walk_in_customer_get
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient, FailureNotice
from mailer.services import retry_delay
from mailer.tasks import deliver_invoice_email
from stores.models import Store
from tests.conftest import broker_queue_length, client_for
from tests.smtp import ReceivedMessage, Refusal, SMTPTestServer

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "cliente@a.example"
COPIES = ["contabilidad@a.example", "gerencia@a.example"]
CONTACTS = ["soporte@a.example", "duena@a.example"]
APPLYING_USER = "cashier_a@example.com"
FIRST_NUMBER = 4121  # distinctive in a PDF's text, unlike "1"


# --- Helpers, shared with test_sweeper ----------------------------------------------------


def wait_for[T](condition: Callable[[], T | None], *, timeout: float = 60, what: str = "the condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def apply_invoice(store: Store, customer: Customer, user: User) -> Invoice:
    lines = [LineData("Café molido 500 g", Decimal(2), Decimal(4500), tax_rate=Decimal(13))]
    draft = invoice_create(store=store, customer=customer, created_by=user, lines=lines)
    return invoice_apply(invoice=draft, applied_by=user)


def delivery_of(invoice: Invoice) -> Delivery:
    return Delivery.objects.get(invoice=invoice)


def finished(invoice: Invoice | None) -> Delivery:
    """The invoice's delivery once it is sent or failed with nothing more to try (no copies
    to try again), and its notices are no longer pending."""
    assert invoice is not None, "a test email has no invoice"

    def done() -> Delivery | None:
        delivery = Delivery.objects.filter(
            invoice=invoice, state__in=["sent", "failed"], next_attempt_at__isnull=True
        ).first()
        if delivery is None or delivery.notices.filter(state__in=["pending", "sending"]).exists():
            return None
        return delivery

    def state() -> str:
        rows = Delivery.objects.filter(invoice=invoice).values(
            "state", "attempt_count", "claimed_at", "next_attempt_at"
        )
        return repr(list(rows))

    try:
        return wait_for(done, what=f"the email of {invoice} to be sent or to fail")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; the delivery: {state()}") from None


def tasks_run(count: int, name: str) -> None:
    """Wait until the worker has finished ``count`` runs of task ``name`` (django-celery-results;
    not for mailer.deliver_invoice_email, whose runs keep no result: see ``counting_runs``)."""
    wait_for(
        lambda: TaskResult.objects.filter(task_name=name, status="SUCCESS").count() >= count,
        what=f"{count} runs of {name}",
    )


@contextmanager
def counting_runs(name: str) -> Iterator[list[str]]:
    """The ids of the runs of task ``name`` that an in-process worker finishes meanwhile."""
    runs: list[str] = []

    def finished_run(sender: Any = None, task_id: str = "", **kwargs: Any) -> None:
        if sender is not None and sender.name == name:
            runs.append(task_id)

    task_postrun.connect(finished_run, weak=False)
    try:
        yield runs
    finally:
        task_postrun.disconnect(finished_run)


def notices_text(server: SMTPTestServer) -> str:
    """The text of every failure notice the server received."""
    return "\n".join(m.text for m in server.messages if m.message["References"] is not None)


def messages_to(server: SMTPTestServer, address: str) -> list[ReceivedMessage]:
    return [received for received in server.messages if address in received.envelope_recipients]


def pdf_attachment(received: ReceivedMessage) -> tuple[str, str]:
    """The name and the text of the message's one PDF attachment."""
    (part,) = [part for part in received.message.iter_attachments() if part.get_content_type() == "application/pdf"]
    payload = part.get_content()
    assert isinstance(payload, bytes)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(payload)).pages)
    return str(part.get_filename()), text


class RefuseTimes(dict[str, Refusal]):
    """The SMTP server's refusals, where ``address`` is refused only its first ``times`` RCPTs."""

    def __init__(self, address: str, refusal: Refusal, times: int) -> None:
        super().__init__()
        self.address, self.refusal, self.left = address, refusal, times

    def get(self, key: str, default: Any = None) -> Any:
        if key == self.address and self.left > 0:
            self.left -= 1
            return self.refusal
        return default


@pytest.fixture(autouse=True)
def short_retries(settings: Settings) -> None:
    settings.MAILER_RETRY_BASE_SECONDS = 0.2
    settings.MAILER_RETRY_MAX_DELAY_SECONDS = 1.0
    settings.MAILER_RETRY_WINDOW_SECONDS = 60
    settings.SITE_URL = "https://facturas.example.com"


@pytest.fixture
def emailing_store(built_in_report_formats: None, store_a: Store) -> Store:
    """Store A1 with sending on, replies to its billing address, two copies, two failure contacts."""
    store_a.email_enabled = True
    store_a.reply_to = "facturacion@a.example"
    store_a.copy_to = "; ".join(COPIES)
    store_a.failure_contacts = "; ".join(CONTACTS)
    store_a.notify_applying_user = True
    store_a.save()
    InvoiceSequence.objects.create(store=store_a, last_number=FIRST_NUMBER - 1)
    return store_a


# --- The happy path -----------------------------------------------------------------------


def test_an_applied_invoice_reaches_the_customer_once_with_its_pdf(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    customer_a.language = Customer.Language.ENGLISH
    customer_a.save()

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.SENT
    assert delivery.sent_at is not None
    (received,) = smtp_server.messages
    # The customer sees only their own address; the copies travel in the envelope alone.
    assert received.header_addresses("To") == [CUSTOMER]
    assert received.envelope_recipients == [CUSTOMER, *COPIES]
    assert received.message["Bcc"] is None
    assert not any(copy in str(received.message) for copy in COPIES)
    assert received.header_addresses("Reply-To") == ["facturacion@a.example"]
    (sender,) = received.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Tienda A1", "facturas@finanzapro.local")
    assert received.message["Message-ID"] == delivery.message_id
    assert delivery.message_id.endswith("@finanzapro.local>")
    # In the customer's language, with both bodies and the PDF.
    assert received.message["Subject"] == f"Invoice {FIRST_NUMBER} from Tienda A1"
    assert f"invoice {FIRST_NUMBER} from Tienda A1" in received.text
    assert f"invoice {FIRST_NUMBER} from Tienda A1" in received.html
    name, text = pdf_attachment(received)
    assert name == f"Factura-{FIRST_NUMBER}.pdf"
    assert str(FIRST_NUMBER) in text
    assert "Café molido 500 g" in text
    # What the invoice page will show.
    assert delivery.requested_by == cashier_a
    assert delivery.report_format is not None and delivery.report_format.code == "invoice-letter"
    assert delivery.report_problem == ""
    assert [(r.address, r.role, r.state) for r in delivery.recipients.all()] == [
        (CUSTOMER, "to", "sent"),
        (COPIES[0], "copy", "sent"),
        (COPIES[1], "copy", "sent"),
    ]
    assert list(delivery.attempts.values_list("number", "outcome")) == [(1, "accepted")]
    assert not delivery.notices.exists()


def test_a_spanish_customer_gets_the_email_in_spanish(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = apply_invoice(emailing_store, customer_a, cashier_a)

    assert finished(invoice).state == Delivery.State.SENT
    (received,) = smtp_server.messages
    assert f"Número: {FIRST_NUMBER}" in received.text
    assert "Number:" not in received.text
    assert '<html lang="es">' in received.html


# --- Skips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("situation", "reason"),
    [
        ("sending off", Delivery.SkipReason.SENDING_OFF),
        ("opted out", Delivery.SkipReason.OPTED_OUT),
        ("no address", Delivery.SkipReason.NO_ADDRESS),
        ("walk-in", Delivery.SkipReason.WALK_IN),
    ],
)
def test_an_invoice_that_is_not_to_be_emailed_is_recorded_as_skipped_with_the_reason(
    situation: str,
    reason: str,
    empty_broker: None,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    customer = customer_a
    if situation == "sending off":
        emailing_store.email_enabled = False
        emailing_store.save()
    elif situation == "opted out":
        customer_a.send_invoices_by_email = False
        customer_a.save()
    elif situation == "no address":
        customer_a.emails = ""
        customer_a.save()
    else:
        customer = walk_in_customer_get(business=emailing_store.business)
        customer.emails = CUSTOMER  # even with an address, the cash customer gets no email
        customer.save()

    invoice = apply_invoice(emailing_store, customer, cashier_a)

    delivery = delivery_of(invoice)
    assert (delivery.state, delivery.skip_reason) == (Delivery.State.SKIPPED, reason)
    assert not delivery.recipients.exists()
    assert broker_queue_length() == 0  # nothing was queued
    assert smtp_server.messages == []


def test_a_rolled_back_apply_leaves_no_delivery_and_queues_nothing(
    empty_broker: None, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    draft = invoice_create(
        store=emailing_store,
        customer=customer_a,
        created_by=cashier_a,
        lines=[LineData("Queso Turrialba", Decimal(1), Decimal(3200))],
    )
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_apply(invoice=draft, applied_by=cashier_a)
        assert Delivery.objects.filter(invoice=draft).exists()  # recorded inside the transaction…
        raise RuntimeError("the sale was cancelled")

    assert not Delivery.objects.exists()  # …and gone with it
    assert broker_queue_length() == 0

    # The same apply, committed, queues exactly one task: the measure above can see one.
    invoice_apply(invoice=draft, applied_by=cashier_a)
    assert Delivery.objects.get().state == Delivery.State.QUEUED
    assert broker_queue_length() == 1


# --- Retries ------------------------------------------------------------------------------


def test_a_server_that_says_try_later_twice_gets_the_email_on_the_third_try(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.behaviour.refused = RefuseTimes(CUSTOMER, Refusal(451, "4.2.1 Mailbox busy, try again later"), 2)

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.SENT
    # One message: the copies waited for the customer's address and went with it, once.
    (received,) = smtp_server.messages
    assert sorted(received.envelope_recipients) == sorted([CUSTOMER, *COPIES])
    attempts = list(delivery.attempts.values_list("number", "outcome", "smtp_code"))
    assert attempts == [(1, "deferred", 451), (2, "deferred", 451), (3, "accepted", None)]
    assert delivery.attempt_count == 3
    assert not delivery.notices.exists()


def test_a_stalled_server_times_out_and_the_email_is_tried_again(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.stall(5)  # longer than the 2-second timeout of the test mailer

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    wait_for(
        lambda: DeliveryAttempt.objects.filter(delivery__invoice=invoice, outcome="deferred").exists(),
        what="a try that timed out",
    )
    smtp_server.stall(0)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.SENT
    first = delivery.attempts.get(number=1)
    assert first.outcome == DeliveryAttempt.Outcome.DEFERRED
    assert "timed out" in first.detail
    assert delivery.attempts.last().outcome == DeliveryAttempt.Outcome.ACCEPTED  # type: ignore[union-attr]
    assert len(messages_to(smtp_server, CUSTOMER)) == 1


def test_it_gives_up_when_the_address_is_refused_for_now_for_the_whole_window(
    celery_worker: Any,
    settings: Settings,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    settings.MAILER_RETRY_WINDOW_SECONDS = 1.5
    smtp_server.refuse(CUSTOMER, 452, "4.2.2 Mailbox full")

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.GAVE_UP
    assert delivery.failure_detail == "452 4.2.2 Mailbox full"
    assert delivery.attempt_count >= 3
    assert set(delivery.attempts.values_list("outcome", flat=True)) == {"deferred"}
    assert messages_to(smtp_server, CUSTOMER) == []
    # The store is told, once per address, with the PDF to forward by hand.
    notices = {notice.address: notice.state for notice in delivery.notices.all()}
    assert notices == {APPLYING_USER: "sent", **dict.fromkeys(CONTACTS, "sent")}
    for address in (APPLYING_USER, *CONTACTS):
        (notice,) = messages_to(smtp_server, address)
        assert pdf_attachment(notice)[0] == f"Factura-{FIRST_NUMBER}.pdf"


def test_smtp_down_for_the_whole_window_fails_and_the_notices_that_cannot_go_are_recorded(
    celery_worker: Any,
    settings: Settings,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    settings.MAILER_RETRY_WINDOW_SECONDS = 1.5
    smtp_server.stop()  # connecting is refused from now on

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.GAVE_UP
    assert "ConnectionRefusedError" in delivery.failure_detail
    assert delivery.attempt_count >= 2
    # One notice per address, tried once: a notice that fails is recorded, never retried.
    notices = list(delivery.notices.values_list("address", "state"))
    assert sorted(notices) == sorted([(APPLYING_USER, "failed")] + [(address, "failed") for address in CONTACTS])
    assert all("ConnectionRefusedError" in error for error in delivery.notices.values_list("error", flat=True))
    assert delivery.next_attempt_at is None  # and a failed delivery can no longer be claimed
    assert FailureNotice.objects.count() == 3


# --- Refusals for good --------------------------------------------------------------------


def test_an_address_rejected_for_good_fails_at_once_and_the_store_is_told(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.refuse(CUSTOMER, 550, "5.1.1 No such user here")

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    delivery = finished(invoice)

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.REJECTED
    assert delivery.failure_detail == "550 5.1.1 No such user here"
    assert list(delivery.attempts.values_list("number", "outcome", "smtp_code")) == [(1, "rejected", 550)]
    assert delivery.recipients.get(address=CUSTOMER).state == DeliveryRecipient.State.FAILED
    assert messages_to(smtp_server, CUSTOMER) == []

    # One notice to the cashier who applied it and one to each failure contact, in Spanish.
    for address in (APPLYING_USER, *CONTACTS):
        (notice,) = messages_to(smtp_server, address)
        assert notice.header_addresses("To") == [address]
        assert CUSTOMER in notice.text
        assert "550 5.1.1 No such user here" in notice.text
        assert "Cliente A" in notice.text
        assert f"https://facturas.example.com/invoices/{invoice.pk}/" in notice.text
        assert f'href="https://facturas.example.com/invoices/{invoice.pk}/"' in notice.html
        assert "Motivo:" in notice.text
        name, text = pdf_attachment(notice)
        assert (name, str(FIRST_NUMBER) in text) == (f"Factura-{FIRST_NUMBER}.pdf", True)
    # The server would have taken the copies, but a copy of an email the customer never got
    # would mislead: the conversation was reset before the message, and only notices went out.
    assert messages_to(smtp_server, COPIES[0]) == messages_to(smtp_server, COPIES[1]) == []
    assert len(smtp_server.messages) == 3
    assert sorted(delivery.recipients.filter(role="copy").values_list("address", "state")) == [
        (COPIES[0], "withheld"),
        (COPIES[1], "withheld"),
    ]
    assert "contabilidad@a.example" not in notices_text(smtp_server)  # not reported as refused
    assert sorted(delivery.notices.values_list("address", "state")) == sorted(
        [(APPLYING_USER, "sent"), *[(address, "sent") for address in CONTACTS]]
    )


def test_without_notify_applying_user_only_the_failure_contacts_are_told(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    emailing_store.notify_applying_user = False
    emailing_store.save()
    smtp_server.refuse(CUSTOMER, 550)

    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery.state == Delivery.State.FAILED
    assert sorted(delivery.notices.values_list("address", flat=True)) == sorted(CONTACTS)
    assert messages_to(smtp_server, APPLYING_USER) == []
    assert all(len(messages_to(smtp_server, address)) == 1 for address in CONTACTS)


def test_a_refused_copy_does_not_fail_the_customers_email_but_is_recorded_and_reported(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    copies = [*COPIES, "auditoria@a.example"]
    emailing_store.copy_to = "; ".join(copies)
    emailing_store.save()
    smtp_server.refuse("gerencia@a.example", 550, "5.1.1 Mailbox unavailable")

    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery.state == Delivery.State.SENT
    (received,) = [m for m in smtp_server.messages if CUSTOMER in m.envelope_recipients]
    assert received.envelope_recipients == [CUSTOMER, "contabilidad@a.example", "auditoria@a.example"]
    refused = delivery.recipients.get(address="gerencia@a.example")
    assert (refused.state, refused.smtp_code, refused.smtp_reply) == ("failed", 550, "5.1.1 Mailbox unavailable")
    assert delivery.attempts.get().outcome == DeliveryAttempt.Outcome.ACCEPTED
    # Reported to the failure contacts (the cashier is told only when the customer's email fails).
    assert sorted(delivery.notices.values_list("address", "state")) == sorted((a, "sent") for a in CONTACTS)
    for address in CONTACTS:
        (notice,) = messages_to(smtp_server, address)
        assert "gerencia@a.example" in notice.text
        assert "550 5.1.1 Mailbox unavailable" in notice.text
    assert messages_to(smtp_server, APPLYING_USER) == []


# --- Reports ------------------------------------------------------------------------------


@pytest.fixture
def broken_report() -> ReportFormat:
    return ReportFormat.objects.create(
        code="broken", name_es="Rota", name_en="Broken", template_name="reports/missing.html", page_size="letter"
    )


def test_a_broken_email_report_falls_back_to_the_print_report_and_says_so(
    celery_worker: Any,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
    broken_report: ReportFormat,
) -> None:
    emailing_store.email_report = broken_report
    emailing_store.save()

    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery.state == Delivery.State.SENT
    assert delivery.report_format is not None and delivery.report_format.code == "invoice-letter"
    assert "reports/missing.html" in delivery.report_problem
    (received,) = messages_to(smtp_server, CUSTOMER)
    assert str(FIRST_NUMBER) in pdf_attachment(received)[1]
    for address in CONTACTS:
        (notice,) = messages_to(smtp_server, address)
        assert "reports/missing.html" in notice.text


def test_an_invoice_whose_pdf_cannot_be_made_fails_and_the_store_is_told(
    celery_worker: Any,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
    broken_report: ReportFormat,
) -> None:
    emailing_store.print_report = broken_report
    emailing_store.save()

    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.NO_PDF
    assert "reports/missing.html" in delivery.failure_detail
    assert list(delivery.attempts.values_list("outcome", flat=True)) == ["error"]
    assert messages_to(smtp_server, CUSTOMER) == []
    for address in (APPLYING_USER, *CONTACTS):
        (notice,) = messages_to(smtp_server, address)
        assert not any(part.get_content_type() == "application/pdf" for part in notice.message.iter_attachments())


class StuckRenders:
    """WeasyPrint's render, held (as on a very busy machine) until ``release`` is set; only the
    first ``count`` renders, or every one (``count=None``); renders get 0.5 s meanwhile."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int | None) -> None:
        monkeypatch.setattr(reports, "RENDER_TIME_LIMIT_SECONDS", 0.5)
        self.release = threading.Event()
        self.left = count
        original = weasyprint.HTML.render

        def render(html: weasyprint.HTML, *args: Any, **kwargs: Any) -> Any:
            if self.left is None or self.left > 0:
                if self.left is not None:
                    self.left -= 1
                self.release.wait(timeout=30)
            return original(html, *args, **kwargs)

        monkeypatch.setattr(weasyprint.HTML, "render", render)


def test_an_invoice_whose_pdf_runs_out_of_time_is_tried_again_and_sent(
    celery_worker: Any,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Running out of time is not a broken format: the email waits and goes on a later try."""
    settings.MAILER_RETRY_BASE_SECONDS = 3  # the next try comes after the held render is let go
    stuck = StuckRenders(monkeypatch, count=1)

    invoice = apply_invoice(emailing_store, customer_a, cashier_a)
    deferred = wait_for(
        lambda: DeliveryAttempt.objects.filter(delivery__invoice=invoice, outcome="deferred").first(),
        what="the first try to give up on the PDF",
    )
    monkeypatch.setattr(reports, "RENDER_TIME_LIMIT_SECONDS", 30.0)
    stuck.release.set()
    queued = delivery_of(invoice)
    assert queued.state == Delivery.State.QUEUED and queued.next_attempt_at is not None
    assert smtp_server.messages == []
    delivery = finished(invoice)

    assert "0.5" in deferred.detail  # "The PDF took longer than 0.5 seconds to generate."
    assert delivery.state == Delivery.State.SENT
    assert list(delivery.attempts.values_list("number", "outcome")) == [(1, "deferred"), (2, "accepted")]
    (received,) = smtp_server.messages
    assert sorted(received.envelope_recipients) == sorted([CUSTOMER, *COPIES])
    assert str(invoice.number) in pdf_attachment(received)[1]
    assert not delivery.notices.exists()  # nothing failed: nobody is told


def test_an_invoice_whose_pdf_keeps_running_out_of_time_fails_when_the_retry_window_ends(
    celery_worker: Any,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.MAILER_RETRY_WINDOW_SECONDS = 0  # no time for another try
    stuck = StuckRenders(monkeypatch, count=None)
    try:
        delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))
    finally:
        stuck.release.set()

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.GAVE_UP
    assert "0.5" in delivery.failure_detail
    assert list(delivery.attempts.values_list("outcome", flat=True)) == ["deferred"]
    assert messages_to(smtp_server, CUSTOMER) == []
    for address in (APPLYING_USER, *CONTACTS):
        (notice,) = messages_to(smtp_server, address)
        assert "0.5" in notice.text


# --- Never twice --------------------------------------------------------------------------


def test_the_same_task_delivered_three_times_sends_one_message(
    empty_broker: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = apply_invoice(emailing_store, customer_a, cashier_a)  # queues the task once…
    delivery = delivery_of(invoice)
    deliver_invoice_email.delay(delivery.pk)  # …and a redelivery, and a second worker's copy
    deliver_invoice_email.delay(delivery.pk)
    assert broker_queue_length() == 3

    # Three threads take the three messages at once.
    with (
        counting_runs("mailer.deliver_invoice_email") as runs,
        start_worker(app, pool="threads", concurrency=3, perform_ping_check=False, shutdown_timeout=10),
    ):
        wait_for(lambda: len(runs) >= 3, what="three runs of the task")

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SENT
    assert delivery.attempt_count == 1
    assert delivery.attempts.count() == 1
    (received,) = smtp_server.messages
    assert received.envelope_recipients == [CUSTOMER, *COPIES]


# --- Task history ------------------------------------------------------------------------


def test_an_email_task_that_ends_normally_keeps_no_task_result_but_one_that_fails_is_listed(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))
    assert delivery.state == Delivery.State.SENT  # its history: the delivery's rows

    deliver_invoice_email.delay("not-a-delivery-id")  # type: ignore[arg-type] # a broken message: the task raises

    failed = wait_for(
        lambda: TaskResult.objects.filter(task_name="mailer.deliver_invoice_email", status="FAILURE").first(),
        what="the failed run in the task results",
    )
    assert "not-a-delivery-id" in failed.result
    assert not TaskResult.objects.filter(task_name="mailer.deliver_invoice_email", status="SUCCESS").exists()


# --- Support -----------------------------------------------------------------------------


def test_support_reads_a_delivery_in_the_admin_and_cannot_change_it(
    empty_broker: None, support: User, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    client = client_for(support)

    listing = client.get(reverse("admin:mailer_delivery_changelist"), {"q": "cliente"})
    page = client.get(reverse("admin:mailer_delivery_change", args=[delivery.pk]))

    assert listing.status_code == page.status_code == 200
    assert CUSTOMER in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert client.post(reverse("admin:mailer_delivery_delete", args=[delivery.pk]), {"post": "yes"}).status_code == 403
    assert Delivery.objects.filter(pk=delivery.pk).exists()


# --- Settings -----------------------------------------------------------------------------


def test_the_first_retry_comes_within_a_minute_and_delays_never_outlast_the_visibility_timeout(
    settings: Settings,
) -> None:
    settings.MAILER_RETRY_BASE_SECONDS = 30
    settings.MAILER_RETRY_MAX_DELAY_SECONDS = 3600
    assert all(15 <= retry_delay(1) <= 30 for _ in range(100))
    assert all(30 <= retry_delay(2) <= 60 for _ in range(100))
    assert all(1800 <= retry_delay(30) <= 3600 for _ in range(100))
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > 3600


def test_workers_recycle_before_their_memory_grows() -> None:
    assert app.conf.worker_max_tasks_per_child == 10_000
    assert app.conf.worker_max_memory_per_child == 300_000
