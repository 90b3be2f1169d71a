import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from invoices.models import Customer, Invoice, InvoiceSequence
from invoices.services import LineData, invoice_apply, invoice_create, invoice_update, invoice_void
from invoices.signals import invoice_applied
from stores.models import Store

pytestmark = pytest.mark.django_db

TWO_LINES = [
    LineData("Café molido 500 g", Decimal("2"), Decimal("4500"), Decimal("0"), Decimal("13")),
    LineData("Queso Turrialba", Decimal("1"), Decimal("3200"), Decimal("10"), Decimal("1")),
]


def draft(store: Store, customer: Customer, user: User, lines: list[LineData] = TWO_LINES) -> Invoice:
    return invoice_create(store=store, customer=customer, created_by=user, lines=lines)


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: type[Invoice], **kwargs: Any) -> None:
        calls.append({"number": kwargs["invoice"].number, "status": kwargs["invoice"].status, **kwargs})

    invoice_applied.connect(receiver, dispatch_uid="test-receiver")
    yield calls
    invoice_applied.disconnect(dispatch_uid="test-receiver")


def test_a_draft_stores_its_lines_and_totals(store_a: Store, customer_a: Customer, cashier_a: User) -> None:
    invoice = draft(store_a, customer_a, cashier_a)
    assert invoice.status == Invoice.Status.DRAFT
    assert invoice.number is None
    assert invoice.currency == "CRC"
    assert [line.position for line in invoice.lines.all()] == [1, 2]
    assert invoice.subtotal == Decimal("12200.00")
    assert invoice.discount_total == Decimal("320.00")
    assert invoice.tax_total == Decimal("1170.00") + Decimal("28.80")
    assert invoice.total == Decimal("12200.00") - Decimal("320.00") + Decimal("1198.80")


def test_applying_numbers_and_freezes_the_invoice(
    store_a: Store, customer_a: Customer, cashier_a: User, received: list[dict[str, Any]]
) -> None:
    invoice = invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)
    assert invoice.number == 1
    assert invoice.status == Invoice.Status.APPLIED
    assert invoice.applied_by == cashier_a
    assert invoice.applied_at is not None
    assert len(received) == 1
    assert received[0]["invoice"].pk == invoice.pk
    assert received[0]["applied_by"] == cashier_a
    assert received[0]["number"] == 1  # sent after numbering, so receivers see the number

    with pytest.raises(ValidationError) as caught:
        invoice_update(invoice=invoice, updated_by=cashier_a, customer=customer_a, lines=TWO_LINES[:1])
    assert caught.value.code == "not_draft"
    invoice.refresh_from_db()
    assert invoice.lines.count() == 2


def test_applying_twice_is_an_error_not_a_second_number(
    store_a: Store, customer_a: Customer, cashier_a: User, received: list[dict[str, Any]]
) -> None:
    invoice = invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)
    with pytest.raises(ValidationError) as caught:
        invoice_apply(invoice=invoice, applied_by=cashier_a)
    assert caught.value.code == "not_draft"
    assert "1" in caught.value.messages[0]
    assert InvoiceSequence.objects.get(store=store_a).last_number == 1
    assert len(received) == 1


def test_an_invoice_without_lines_cannot_be_applied(
    store_a: Store, customer_a: Customer, cashier_a: User, received: list[dict[str, Any]]
) -> None:
    invoice = draft(store_a, customer_a, cashier_a, lines=[])
    with pytest.raises(ValidationError) as caught:
        invoice_apply(invoice=invoice, applied_by=cashier_a)
    assert caught.value.code == "no_lines"
    assert received == []
    assert not InvoiceSequence.objects.filter(store=store_a, last_number__gt=0).exists()


def test_applying_reads_the_invoice_and_whether_it_has_lines_in_one_locked_statement(
    store_a: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)  # the store's first
    invoice = draft(store_a, customer_a, cashier_a)
    with CaptureQueriesContext(connection) as queries:
        invoice_apply(invoice=invoice, applied_by=cashier_a)

    statements = [query["sql"] for query in queries.captured_queries if "SAVEPOINT" not in query["sql"]]
    first, *others = statements
    assert first.startswith('SELECT "invoices_invoice"."id"')
    assert 'EXISTS(SELECT 1 AS "a" FROM "invoices_invoiceline"' in first
    assert first.endswith('FOR UPDATE OF "invoices_invoice"')
    assert not [sql for sql in others if "invoices_invoiceline" in sql]
    # The cashier's store, the number, the invoice, its delivery row (email or why not).
    assert [sql.split()[0] for sql in others] == ["SELECT", "UPDATE", "UPDATE", "INSERT"]


def test_the_next_apply_of_a_connection_compiles_no_read(
    store_a: Store, customer_a: Customer, cashier_a: User, compiled_sql: list[str]
) -> None:
    """The locked read of the invoice (with its store, customer and whether it has lines) and
    the read of the cashier's assignment to the store are compiled by the first apply of a
    connection only; the next one runs the same SQL."""
    invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)
    invoice = draft(store_a, customer_a, cashier_a)
    compiled_sql.clear()
    with CaptureQueriesContext(connection) as queries:
        applied = invoice_apply(invoice=invoice, applied_by=cashier_a)

    locked = [query["sql"] for query in queries.captured_queries if "FOR UPDATE" in query["sql"]]
    assert len(locked) == 1 and str(invoice.pk) in locked[0]
    assignment = [query["sql"] for query in queries.captured_queries if '"accounts_user_stores"' in query["sql"]]
    assert len(assignment) == 1 and str(cashier_a.pk) in assignment[0] and str(store_a.pk) in assignment[0]
    assert not [sql for sql in compiled_sql if 'FROM "invoices_invoice"' in sql or '"accounts_user_stores"' in sql]
    assert (applied.pk, applied.status, applied.number) == (invoice.pk, Invoice.Status.APPLIED, 2)
    assert (applied.store, applied.customer) == (store_a, customer_a)


def test_a_cashier_taken_off_a_store_is_refused_at_the_next_apply_of_the_connection(
    store_a: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)  # the read compiled
    invoice = draft(store_a, customer_a, cashier_a)
    cashier_a.stores.remove(store_a)

    with pytest.raises(PermissionDenied):
        invoice_apply(invoice=invoice, applied_by=cashier_a)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == (Invoice.Status.DRAFT, None)


def test_a_cashier_cannot_invoice_in_a_store_not_assigned(
    store_a2: Store, customer_a: Customer, cashier_a: User, admin_a: User, received: list[dict[str, Any]]
) -> None:
    with pytest.raises(PermissionDenied):
        draft(store_a2, customer_a, cashier_a)
    invoice = draft(store_a2, customer_a, admin_a)
    with pytest.raises(PermissionDenied):
        invoice_apply(invoice=invoice, applied_by=cashier_a)
    assert received == []


def test_a_customer_of_another_business_is_refused(store_a: Store, customer_b: Customer, admin_a: User) -> None:
    with pytest.raises(ValidationError) as caught:
        draft(store_a, customer_b, admin_a)
    assert "customer" in caught.value.message_dict


def test_another_business_cannot_apply(store_a: Store, customer_a: Customer, admin_a: User, admin_b: User) -> None:
    with pytest.raises(PermissionDenied):
        invoice_apply(invoice=draft(store_a, customer_a, admin_a), applied_by=admin_b)


def test_no_signal_and_no_number_when_the_transaction_rolls_back(
    store_a: Store, customer_a: Customer, cashier_a: User, received: list[dict[str, Any]]
) -> None:
    invoice = draft(store_a, customer_a, cashier_a)
    seen_inside: list[int | None] = []

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        applied = invoice_apply(invoice=invoice, applied_by=cashier_a)
        seen_inside.append(applied.number)
        raise Boom

    invoice.refresh_from_db()
    assert seen_inside == [1]
    assert invoice.status == Invoice.Status.DRAFT
    assert invoice.number is None
    # The receiver ran inside the rolled-back transaction; what it wrote went with it, and
    # work it deferred with on_commit never runs. The next apply reuses the number: no gap.
    assert invoice_apply(invoice=invoice, applied_by=cashier_a).number == 1


def test_the_signal_waits_for_validation(
    store_a: Store, customer_a: Customer, cashier_a: User, received: list[dict[str, Any]]
) -> None:
    invoice = draft(store_a, customer_a, cashier_a, lines=[])
    with pytest.raises(ValidationError):
        invoice_apply(invoice=invoice, applied_by=cashier_a)
    assert received == []


def test_two_stores_keep_separate_sequences(
    store_a: Store, store_a2: Store, customer_a: Customer, admin_a: User
) -> None:
    numbers = [
        invoice_apply(invoice=draft(store, customer_a, admin_a), applied_by=admin_a).number
        for store in (store_a, store_a2, store_a, store_a2, store_a)
    ]
    assert numbers == [1, 1, 2, 2, 3]


def test_voiding_needs_a_reason_and_a_store_admin(
    store_a: Store, customer_a: Customer, cashier_a: User, admin_a: User
) -> None:
    invoice = invoice_apply(invoice=draft(store_a, customer_a, cashier_a), applied_by=cashier_a)
    with pytest.raises(PermissionDenied):
        invoice_void(invoice=invoice, voided_by=cashier_a, reason="Error")
    with pytest.raises(ValidationError):
        invoice_void(invoice=invoice, voided_by=admin_a, reason="  ")
    voided = invoice_void(invoice=invoice, voided_by=admin_a, reason="Cliente equivocado")
    assert voided.status == Invoice.Status.VOIDED
    assert voided.number == 1
    assert voided.void_reason == "Cliente equivocado"


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_applies_number_one_to_fifty(
    store_a: Store, store_b: Store, admin_a: User, admin_b: User, customer_a: Customer, customer_b: Customer
) -> None:
    assert connection.vendor == "postgresql"
    drafts = [draft(store_a, customer_a, admin_a) for _ in range(50)]
    other = [draft(store_b, customer_b, admin_b) for _ in range(5)]
    start = threading.Barrier(len(drafts) + len(other))
    errors: list[BaseException] = []

    def apply(invoice: Invoice, user: User) -> None:
        try:
            start.wait(timeout=30)
            invoice_apply(invoice=invoice, applied_by=user)
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply, args=(invoice, admin_a)) for invoice in drafts]
    threads += [threading.Thread(target=apply, args=(invoice, admin_b)) for invoice in other]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []

    def numbers(store: Store) -> list[int | None]:
        return list(Invoice.objects.filter(store=store).order_by("number").values_list("number", flat=True))

    assert numbers(store_a) == list(range(1, 51))
    assert numbers(store_b) == [1, 2, 3, 4, 5]
