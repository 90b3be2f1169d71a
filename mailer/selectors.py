"""Reads of invoice emails, filtered by tenant: the invoice's email panel and the Correos pages."""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, QuerySet

from accounts.models import Business, User
from invoices.models import Invoice
from mailer.models import Delivery, DeliveryQuerySet
from mailer.services import can_resend
from stores.models import Store, StoreQuerySet


@dataclass(frozen=True)
class InvoiceEmailPanel:
    """What the invoice page shows about its emails."""

    invoice: Invoice
    deliveries: list[Delivery]  # newest first, with their recipients, tries and notices
    can_resend: bool

    @property
    def in_flight(self) -> bool:
        """Something is still to happen: the panel keeps asking the server until it settles."""
        return any(delivery.state in {Delivery.State.QUEUED, Delivery.State.SENDING} for delivery in self.deliveries)


def invoice_email_panel(*, user: User | AnonymousUser, invoice_id: int) -> InvoiceEmailPanel | None:
    """The email panel of invoice ``invoice_id``, or None when ``user`` may not see the invoice."""
    invoice = (
        Invoice.objects.for_user(user).select_related("store", "customer", "applied_by").filter(pk=invoice_id).first()
    )
    if invoice is None:
        return None
    deliveries = list(
        Delivery.objects.filter(invoice=invoice)
        .select_related("report_format", "requested_by")
        .prefetch_related("recipients", "attempts", "notices")
    )
    return InvoiceEmailPanel(
        invoice=invoice,
        deliveries=deliveries,
        can_resend=isinstance(user, User) and can_resend(user, invoice),
    )


def delivery_stores(*, user: User | AnonymousUser) -> StoreQuerySet:
    """The stores whose emails ``user`` may look at: every store for support, the business's
    stores for a store admin, none for cashiers (the Correos pages are not theirs)."""
    return Store.objects.editable_by(user).select_related("business")


def delivery_list(
    *,
    user: User | AnonymousUser,
    store: Store | None = None,
    business_id: int | None = None,
    state: str = "",
    customer: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> DeliveryQuerySet:
    """The deliveries of the stores ``user`` may look at, newest first, narrowed by the Correos
    pages' filters. Dates are local calendar days of the delivery's creation, both included."""
    deliveries = Delivery.objects.filter(store__in=delivery_stores(user=user).values("pk")).select_related(
        "invoice__customer", "store__business"
    )
    if store is not None:
        deliveries = deliveries.filter(store=store)
    if business_id is not None:
        deliveries = deliveries.filter(store__business_id=business_id)
    if state:
        deliveries = deliveries.filter(state=state)
    if customer:
        deliveries = deliveries.filter(invoice__customer__name__icontains=customer)
    if date_from is not None:
        deliveries = deliveries.filter(created_at__date__gte=date_from)
    if date_to is not None:
        deliveries = deliveries.filter(created_at__date__lte=date_to)
    return deliveries


def delivery_state_counts(deliveries: DeliveryQuerySet) -> dict[str, int]:
    """How many of ``deliveries`` are in each state, every state named (zero included), in one query."""
    # COUNT(*), not COUNT(id): the index on (store, state, ...) answers it alone, without the rows.
    counted = {row["state"]: row["count"] for row in deliveries.order_by().values("state").annotate(count=Count("*"))}
    return {state: counted.get(state, 0) for state in Delivery.State.values}


def delivery_businesses(*, user: User | AnonymousUser) -> QuerySet[Business]:
    """The businesses offered in the Correos filter: every one for support, none for anybody else."""
    if isinstance(user, User) and user.is_active and user.is_support:
        return Business.objects.order_by("name")
    return Business.objects.none()
