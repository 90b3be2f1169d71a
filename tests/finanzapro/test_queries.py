"""CompiledRead: the queryset's own rows and related objects, its SQL compiled once per connection."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from finanzapro.queries import CompiledRead
from invoices.models import Customer, Invoice, InvoiceLine
from invoices.services import LineData, invoice_create
from stores.models import Store

pytestmark = pytest.mark.django_db


def invoices(store: Store, customer: Customer, user: User, count: int) -> list[Invoice]:
    lines = [LineData(f"Línea {n}", Decimal(n), Decimal("10.25"), tax_rate=Decimal(13)) for n in (1, 2, 3)]
    return [
        invoice_create(store=store, customer=customer, created_by=user, lines=lines, notes=f"n.º {index}")
        for index in range(count)
    ]


def with_parties(invoice_id: int) -> QuerySet[Invoice]:
    return Invoice.objects.select_related("store__business", "customer", "created_by").filter(pk=invoice_id)


read_invoice = CompiledRead(with_parties)


def test_it_reads_what_the_queryset_reads(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    first, second = invoices(store_a, customer_a, admin_a, 2)
    for invoice in (first, second):
        expected = with_parties(invoice.pk).get()
        (read,) = read_invoice(invoice.pk)
        assert type(read) is Invoice
        assert {f.attname: getattr(read, f.attname) for f in Invoice._meta.concrete_fields} == {
            f.attname: getattr(expected, f.attname) for f in Invoice._meta.concrete_fields
        }
        assert read.total == expected.total > 0 and isinstance(read.total, Decimal)
        assert read.created_at == expected.created_at and read.created_at.tzinfo is not None
        assert not read._state.adding and read._state.db == "default"
        with CaptureQueriesContext(connection) as queries:  # the related rows came with it
            assert read.store.business.name == store_a.business.name
            assert read.customer.name == customer_a.name
            assert read.created_by == admin_a
        assert len(queries) == 0


def test_it_reads_nothing_for_an_id_no_row_has(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    invoices(store_a, customer_a, admin_a, 1)
    assert read_invoice(10**12) == []


def test_get_gives_the_one_instance_or_the_models_does_not_exist(
    store_a: Store, customer_a: Customer, admin_a: User
) -> None:
    invoice = invoices(store_a, customer_a, admin_a, 1)[0]
    assert read_invoice.get(invoice.pk) == invoice
    with pytest.raises(Invoice.DoesNotExist):
        read_invoice.get(10**12)


def test_it_keeps_the_querysets_order(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    invoice = invoices(store_a, customer_a, admin_a, 1)[0]
    lines = CompiledRead(lambda invoice_id: InvoiceLine.objects.filter(invoice_id=invoice_id).order_by("-position"))
    assert [line.position for line in lines(invoice.pk)] == [3, 2, 1]
    assert [line.total for line in lines(invoice.pk)] == [line.total for line in invoice.lines.order_by("-position")]


def test_it_compiles_once_per_connection(
    store_a: Store, customer_a: Customer, admin_a: User, compiled_sql: list[str]
) -> None:
    made = invoices(store_a, customer_a, admin_a, 3)
    read = CompiledRead(with_parties)
    compiled_sql.clear()
    with CaptureQueriesContext(connection) as queries:
        found = [read(invoice.pk)[0].pk for invoice in made]
    assert found == [invoice.pk for invoice in made]
    assert len(compiled_sql) == 1
    assert len(queries) == 3  # one query per read


def test_the_querysets_own_read_compiles_every_time(
    store_a: Store, customer_a: Customer, admin_a: User, compiled_sql: list[str]
) -> None:
    """What CompiledRead saves: the check above against Django's own behaviour."""
    made = invoices(store_a, customer_a, admin_a, 3)
    compiled_sql.clear()
    for invoice in made:
        with_parties(invoice.pk).get()
    assert len(compiled_sql) == 3


def test_it_takes_several_ids_or_none(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    first, second = invoices(store_a, customer_a, admin_a, 2)
    between = CompiledRead(lambda low, high: Invoice.objects.filter(pk__gte=low, pk__lte=high).order_by("pk"))
    assert [i.pk for i in between(first.pk, second.pk)] == [first.pk, second.pk]
    assert [i.pk for i in between(second.pk, second.pk)] == [second.pk]
    every_store = CompiledRead(lambda: Store.objects.filter(business=store_a.business).order_by("pk"))
    assert [s.pk for s in every_store()] == [store_a.pk]


def test_it_refuses_a_read_whose_id_is_not_a_parameter(store_a: Store) -> None:
    ignores_its_id = CompiledRead(lambda store_id: Store.objects.filter(pk=store_a.pk))
    with pytest.raises(ValueError, match="each id must be a parameter"):
        ignores_its_id(store_a.pk)


def test_it_sets_the_querysets_annotations(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    invoices(store_a, customer_a, admin_a, 2)

    def counted(store_id: int) -> QuerySet[Store]:
        return (
            Store.objects.select_related("business")
            .filter(pk=store_id)
            .annotate(n=Count("invoices"), has_notes=Exists(Invoice.objects.filter(store=OuterRef("pk"), notes="")))
        )

    read = CompiledRead(counted)
    for _round in range(2):  # compiled, then from the compiled SQL
        (store,) = read(store_a.pk)
        assert (store.n, store.has_notes) == (2, False)  # type: ignore[attr-defined]
        assert store.business.name == store_a.business.name
    expected = counted(store_a.pk).get()
    assert (expected.n, expected.has_notes) == (2, False)  # type: ignore[attr-defined]


def test_a_locking_read_locks_in_its_transaction(store_a: Store, customer_a: Customer, admin_a: User) -> None:
    invoice = invoices(store_a, customer_a, admin_a, 1)[0]
    locked = CompiledRead(lambda invoice_id: Invoice.objects.select_for_update(of=("self",)).filter(pk=invoice_id))
    for _round in range(2):
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            assert [read.pk for read in locked(invoice.pk)] == [invoice.pk]
        assert 'FOR UPDATE OF "invoices_invoice"' in queries[-1]["sql"]


def test_it_refuses_what_it_would_not_bring_along(store_a: Store) -> None:
    prefetched = CompiledRead(lambda store_id: Store.objects.filter(pk=store_id).prefetch_related("invoices"))
    with pytest.raises(ValueError, match="no extra"):
        prefetched(store_a.pk)
