"""200 invoices applied at once are emailed by real ``celery worker`` processes: none lost, none twice.

The worker is the production one, a ``celery -A finanzapro worker --pool=prefork`` subprocess
on the test database and Redis, sending to the test's SMTP server (tests/conftest.py,
``worker_processes``). Nothing is timed: the test polls the database until every delivery is
settled, with a generous limit, and then counts what the server received.

Heavy on purpose (about 25 s: a worker start, 200 renders and sends, 200 PDFs read back), and
part of ``make test`` like every other test: never skip it.
"""

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connections

from accounts.models import User
from invoices.models import Customer, Invoice, InvoiceSequence, ReportFormat
from invoices.services import LineData, invoice_apply, invoice_create
from mailer.backends import MESSAGES_PER_CONNECTION
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient
from stores.models import Store
from tests.conftest import WorkerProcesses, broker_queue_length
from tests.mailer.test_delivery import pdf_attachment
from tests.smtp import SMTPTestServer

pytestmark = pytest.mark.django_db(transaction=True)

INVOICES = 200
TERMINALS = 4  # cashiers applying at the same time, each on its own database connection
FIRST_NUMBER = 7001
COPY = "archivo@a.example"
BURST_TIMEOUT = 300  # seconds; a loaded 2-core machine takes well under a minute


def until[T](workers: WorkerProcesses, condition: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy. Fails at once, with the workers'
    logs, if a worker dies; and after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        workers.check_alive()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{workers.logs()}")
        time.sleep(0.1)


def customer_address(index: int) -> str:
    return f"cliente{index:03d}@burst.example"


def apply_all(store: Store, cashier: User, customers: list[Customer]) -> list[Invoice]:
    """One cashier's share of the burst, applied one after the other, as at a till."""
    try:
        applied = []
        for customer in customers:
            lines = [LineData("Pan baguette", Decimal(3), Decimal(850), tax_rate=Decimal(13))]
            draft = invoice_create(store=store, customer=customer, created_by=cashier, lines=lines)
            applied.append(invoice_apply(invoice=draft, applied_by=cashier))
        return applied
    finally:
        connections.close_all()  # this thread's connection, before the test's database is flushed


def test_a_burst_of_200_applied_invoices_sends_200_messages_none_lost_none_doubled(
    worker_processes: WorkerProcesses,
    smtp_server: SMTPTestServer,
    built_in_report_formats: None,
    store_a: Store,
    cashier_a: User,
) -> None:
    # The 80 mm ticket, the quickest report to render; one copy for the store's archive.
    store_a.print_report = ReportFormat.objects.get(code="pos-ticket-80mm")
    store_a.email_enabled = True
    store_a.reply_to = "facturacion@a.example"
    store_a.copy_to = COPY
    store_a.save()
    InvoiceSequence.objects.create(store=store_a, last_number=FIRST_NUMBER - 1)
    customers = [
        Customer.objects.create(
            business=store_a.business, name=f"Cliente {i}", emails=customer_address(i), send_invoices_by_email=True
        )
        for i in range(INVOICES)
    ]
    cashiers = [cashier_a]
    for n in range(2, TERMINALS + 1):
        cashier = User.objects.create_user(
            username=f"cajero{n}", password="secret-pass-123", business=store_a.business, role=User.Role.CASHIER
        )
        cashier.stores.add(store_a)
        cashiers.append(cashier)

    worker_processes.start("burst", concurrency=2)  # as in production; its tasks wait in Redis meanwhile
    with ThreadPoolExecutor(max_workers=TERMINALS) as terminals:
        shares = [
            terminals.submit(apply_all, store_a, cashier, customers[n::TERMINALS]) for n, cashier in enumerate(cashiers)
        ]
        invoices = [invoice for share in shares for invoice in share.result()]

    numbers = sorted(invoice.number for invoice in invoices if invoice.number is not None)
    assert numbers == list(range(FIRST_NUMBER, FIRST_NUMBER + INVOICES))
    assert Delivery.objects.count() == INVOICES  # one each, recorded in its applying transaction

    def settled() -> bool:
        failed = list(Delivery.objects.filter(state=Delivery.State.FAILED).values("invoice__number", "failure_detail"))
        assert not failed, f"deliveries failed: {failed}"
        return Delivery.objects.filter(state=Delivery.State.SENT).count() == INVOICES

    until(worker_processes, settled, timeout=BURST_TIMEOUT, what=f"{INVOICES} deliveries to be sent")

    # Every delivery went once, at its first try, to its customer and the copy.
    deliveries = list(Delivery.objects.select_related("invoice__customer"))
    assert len(deliveries) == INVOICES
    assert {(d.state, d.attempt_count, d.unknown_outcomes) for d in deliveries} == {("sent", 1, 0)}
    assert set(DeliveryAttempt.objects.values_list("outcome", flat=True)) == {"accepted"}
    assert DeliveryAttempt.objects.count() == INVOICES
    assert set(DeliveryRecipient.objects.values_list("state", flat=True)) == {"sent"}
    assert DeliveryRecipient.objects.count() == 2 * INVOICES
    assert not Delivery.objects.filter(notices__isnull=False).exists()

    # The server received exactly one message per invoice: none lost, none doubled.
    received = list(smtp_server.messages)
    assert len(received) == INVOICES
    message_ids = Counter(str(message.message["Message-ID"]) for message in received)
    assert len(message_ids) == INVOICES, f"Message-IDs received more than once: {message_ids.most_common(3)}"
    # Each pool process kept its SMTP connection from one email to the next (a new one every
    # MESSAGES_PER_CONNECTION emails): a handful of connections, not one per invoice.
    connections_used = len({message.peer for message in received})
    assert connections_used <= 2 * -(-INVOICES // MESSAGES_PER_CONNECTION), connections_used
    by_message_id = {d.message_id: d for d in deliveries}
    address_of = {customer.pk: customer_address(i) for i, customer in enumerate(customers)}
    assert set(message_ids) == set(by_message_id)
    seen_numbers: Counter[int] = Counter()
    for message in received:
        delivery = by_message_id[str(message.message["Message-ID"])]
        invoice = delivery.invoice
        assert invoice is not None
        number, address = invoice.number, address_of[invoice.customer_id]
        assert number is not None
        seen_numbers[number] += 1
        # To its own customer, the copy only in the envelope.
        assert message.envelope_recipients == [address, COPY]
        assert message.header_addresses("To") == [address]
        assert message.message["Bcc"] is None
        assert message.message["Subject"] == f"Factura {number} de Tienda A1"
        name, text = pdf_attachment(message)
        assert name == f"Factura-{number}.pdf"
        assert str(number) in text
    assert sorted(seen_numbers) == numbers
    assert set(seen_numbers.values()) == {1}
    assert smtp_server.envelope_recipients.count(COPY) == INVOICES
    assert broker_queue_length() == 0  # nothing left to do, nothing queued twice
