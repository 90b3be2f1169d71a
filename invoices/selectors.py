from datetime import date

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q

from accounts.models import User
from invoices.models import Customer, CustomerQuerySet, Invoice, InvoiceQuerySet
from stores.models import Store, StoreQuerySet


def customer_list(*, user: User | AnonymousUser, search: str = "") -> CustomerQuerySet:
    """Customers ``user`` may see, filtered by name or legal id."""
    customers = Customer.objects.for_user(user).select_related("business")
    if search:
        customers = customers.filter(Q(name__icontains=search) | Q(legal_id__icontains=search))
    return customers


def invoicing_store_list(*, user: User | AnonymousUser) -> StoreQuerySet:
    """The stores ``user`` works in, as offered by the invoice pages' store selector."""
    return Store.objects.for_user(user).select_related("business")


def invoice_customer_choices(*, user: User | AnonymousUser, store: Store) -> CustomerQuerySet:
    """The customers an invoice of ``store`` may go to: its business's, the walk-in customer first."""
    return Customer.objects.for_user(user).filter(business_id=store.business_id).order_by("-is_walk_in", "name")


def invoice_list(
    *,
    user: User | AnonymousUser,
    store: Store,
    status: str = "",
    number: int | None = None,
    customer: str = "",
    date_field: str = "created",
    date_from: date | None = None,
    date_to: date | None = None,
) -> InvoiceQuerySet:
    """The invoices of ``store`` that ``user`` may see, newest first, narrowed by the list's filters.

    Dates are the local calendar days of ``created_at`` or ``applied_at`` (``date_field``), both ends included.
    """
    invoices = Invoice.objects.for_user(user).filter(store=store).select_related("customer")
    if status:
        invoices = invoices.filter(status=status)
    if number is not None:
        invoices = invoices.filter(number=number)
    if customer:
        invoices = invoices.filter(customer__name__icontains=customer)
    column = "applied_at" if date_field == "applied" else "created_at"
    if date_from is not None:
        invoices = invoices.filter(**{f"{column}__date__gte": date_from})
    if date_to is not None:
        invoices = invoices.filter(**{f"{column}__date__lte": date_to})
    return invoices
