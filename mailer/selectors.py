"""Reads of invoice emails, filtered by tenant: the invoice's email panel and the Correos pages."""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.db.models import QuerySet
from django.utils.translation import gettext

from accounts.models import Business, User
from invoices.models import Invoice
from mailer.models import Delivery, DeliveryAttempt, DeliveryQuerySet, DeliveryRecipient
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
    deliveries = Delivery.objects.filter(
        kind=Delivery.Kind.INVOICE, store__in=delivery_stores(user=user).values("pk")
    ).select_related("invoice__customer", "store__business")
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


# Beyond this many emails in one state a Correos page says "more than", as counting every row of
# a busy store would cost more than the rest of the page: the count reads at most this many + 1.
STATE_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class StateCount:
    """How many emails are in one state, or that there are more than ``number`` of them."""

    number: int
    more: bool = False  # at least ``number + 1``: counting stopped at the limit


def delivery_state_counts(deliveries: DeliveryQuerySet) -> dict[str, StateCount]:
    """How many of ``deliveries`` are in each state, every state named (zero included), in one
    query that reads at most ``STATE_COUNT_LIMIT + 1`` index entries per state."""
    limit = STATE_COUNT_LIMIT
    parts, params = [], []
    for state in Delivery.State.values:
        # The state alone, not the id: the index on (store, state, ...) answers without the rows.
        limited = deliveries.filter(state=state).order_by().values("state")[: limit + 1]
        sql, sql_params = limited.query.sql_with_params()
        parts.append(f"SELECT %s, COUNT(*) FROM ({sql}) AS limited")  # noqa: S608 -- the ORM's own SQL
        params.extend([state, *sql_params])
    with connections[deliveries.db].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        counted = dict(cursor.fetchall())
    return {
        state: StateCount(limit, more=True) if counted[state] > limit else StateCount(counted[state])
        for state in Delivery.State.values
    }


def total_count(counts: dict[str, StateCount]) -> StateCount:
    """All the states together: more than their sum when any of them stopped at the limit."""
    return StateCount(sum(count.number for count in counts.values()), any(count.more for count in counts.values()))


def delivery_businesses(*, user: User | AnonymousUser) -> QuerySet[Business]:
    """The businesses offered in the Correos filter: every one for support, none for anybody else."""
    if isinstance(user, User) and user.is_active and user.is_support:
        return Business.objects.order_by("name")
    return Business.objects.none()


# --- Test emails ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestEmailStatus:
    """What the person who asked for a store's test email sees, in the active language."""

    __test__ = False  # a status, not a test class for pytest to collect

    delivery: Delivery
    ok: bool  # sent, and nothing went wrong on the way
    message: str

    @property
    def in_flight(self) -> bool:
        return self.delivery.state in {Delivery.State.QUEUED, Delivery.State.SENDING}


def store_test_email_status(*, user: User | AnonymousUser, delivery_id: int) -> TestEmailStatus | None:
    """Test email ``delivery_id`` as its sender sees it; None for anybody else, or when the
    sender may no longer edit the store's settings."""
    if not isinstance(user, User):
        return None
    delivery = (
        Delivery.objects.filter(
            pk=delivery_id,
            kind=Delivery.Kind.TEST,
            requested_by=user,
            store__in=Store.objects.editable_by(user).values("pk"),
        )
        .select_related("store", "report_format")
        .prefetch_related("recipients", "attempts")
        .first()
    )
    if delivery is None:
        return None
    return TestEmailStatus(delivery=delivery, ok=_test_email_ok(delivery), message=_test_email_message(delivery))


def _test_email_ok(delivery: Delivery) -> bool:
    refused = any(r.state == DeliveryRecipient.State.FAILED for r in delivery.recipients.all())
    return delivery.state == Delivery.State.SENT and not refused and not delivery.report_problem


def _test_email_message(delivery: Delivery) -> str:
    recipients = list(delivery.recipients.all())
    if delivery.state in {Delivery.State.QUEUED, Delivery.State.SENDING}:
        return gettext("Sending the test email to %(addresses)s…") % {"addresses": ", ".join(delivery.to_addresses)}
    parts = []
    if delivery.state == Delivery.State.SENT:
        accepted = [r.address for r in recipients if r.state == DeliveryRecipient.State.SENT]
        parts.append(gettext("Test email sent to %(addresses)s.") % {"addresses": ", ".join(accepted)})
    elif delivery.failure_kind == Delivery.FailureKind.NO_PDF:
        parts.append(
            gettext("The sample invoice could not be made, so no email was sent: %(detail)s")
            % {"detail": delivery.failure_detail}
        )
    elif delivery.failure_kind == Delivery.FailureKind.UNSENDABLE:
        parts.append(gettext("The email could not be sent: %(error)s") % {"error": delivery.failure_detail})
    attempts = list(delivery.attempts.all())
    last = attempts[-1] if attempts else None
    if last is not None and last.problem:
        parts.append(explain_problem(last.problem, last.detail))
    else:
        parts.extend(_explain_refusal(r) for r in recipients if r.state == DeliveryRecipient.State.FAILED)
    if delivery.report_problem:
        parts.append(
            gettext("The store's email report could not be used, so the print report was attached instead: %(problem)s")
            % {"problem": delivery.report_problem}
        )
    return " ".join(part for part in parts if part)


def _explain_refusal(recipient: DeliveryRecipient) -> str:
    """What the server said of one address, in plain words, with its answer."""
    params = {"address": recipient.address, "code": recipient.smtp_code or "", "reply": recipient.smtp_reply}
    if recipient.smtp_code is not None and 400 <= recipient.smtp_code < 500:
        return (
            gettext("The mail server temporarily refused %(address)s (%(code)s %(reply)s). Try again later.") % params
        )
    return (
        gettext(
            "The mail server rejected the address %(address)s (%(code)s %(reply)s). Check that it is spelled correctly."
        )
        % params
    )


def explain_problem(problem: str, answer: str) -> str:
    """Why nothing was sent, in plain words; ``answer`` is the server's code and text, or the error."""
    params = {"answer": answer}
    if problem == DeliveryAttempt.Problem.TIMEOUT:
        return gettext(
            "The mail server did not answer in time, so the email was probably not sent. "
            "Try again in a few minutes; if it keeps happening, tell FinanzaPro support."
        )
    if problem == DeliveryAttempt.Problem.LOGIN:
        return (
            gettext(
                "The mail server did not accept FinanzaPro's user name or password (%(answer)s). "
                "No email was sent; please tell FinanzaPro support."
            )
            % params
        )
    if problem == DeliveryAttempt.Problem.BUSY:
        return (
            gettext(
                "The mail server cannot take the email right now (%(answer)s). "
                "No email was sent; try again in a few minutes."
            )
            % params
        )
    if problem == DeliveryAttempt.Problem.REFUSED:
        return gettext("The mail server refused the email (%(answer)s). No email was sent.") % params
    if problem == DeliveryAttempt.Problem.CONNECTION:
        return gettext(
            "Could not connect to the mail server: it is down or unreachable. No email was sent. "
            "Try again in a few minutes; if it keeps happening, tell FinanzaPro support."
        )
    return gettext("The email could not be sent: %(error)s") % {"error": answer}
