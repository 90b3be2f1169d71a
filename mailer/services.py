"""The mailer's actions: what gets sent, to whom, and what the mail server answered."""

import logging
import random
import smtplib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cache, partial
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import punycode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from finanzapro.email_addresses import SEPARATOR, parse_address_list
from finanzapro.queries import CompiledRead
from invoices.models import Invoice, ReportFormat
from invoices.reports import (
    ReportRenderError,
    ReportRenderTimeout,
    render_invoice_pdf,
    render_sample_pdf,
    report_format_for_email,
    report_format_for_print,
)
from mailer.backends import NeededRecipientsRefused, Refusal, decode_reply, refusals, send_message
from mailer.emails import render_email
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient, FailureNotice
from stores.models import Store

logger = logging.getLogger(__name__)


def sender_address() -> str:
    """The address every store's email is sent from: DEFAULT_FROM_EMAIL's, without its name."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


def store_sender(store: Store) -> str:
    """``"Store name" <sender address>``: customers see the store's name, our domain sends.

    ``Address`` quotes a name with a comma or a quote; a non-ASCII name is encoded when the
    message is serialized.
    """
    return str(Address(display_name=store.name, addr_spec=sender_address()))


def store_test_email_send(*, store: Store, user: User) -> Delivery:
    """Queue a test email of ``store`` to ``user``: a sample invoice made with the store's
    saved email settings and report, through the same steps as an invoice email (a delivery
    row, the worker, the same rendering and SMTP rules), so what it shows is what customers
    get. The store's copies receive it too, as Bcc. Nothing is retried: a person is waiting
    for the answer, which ``store_test_email_status`` words.

    Raises ValidationError ``no_address`` when ``user`` has no email address.
    """
    to = _addresses(user.email)
    if not to:
        raise ValidationError(
            _(
                "Your user account has no email address, so the test email has nowhere to go. "
                "Add one to your account and try again."
            ),
            code="no_address",
        )
    return _delivery_record(store=store, invoice=None, language=user.language, requested_by=user, to=to, skip_reason="")


def _is_timeout(error: OSError) -> bool:
    # smtplib turns a timeout while waiting for an answer into SMTPServerDisconnected.
    return isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError)


def _problem(error: OSError) -> str:
    """What kind of trouble ``error`` is, for the words the pages show (DeliveryAttempt.Problem)."""
    if _is_timeout(error):
        return DeliveryAttempt.Problem.TIMEOUT
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return DeliveryAttempt.Problem.LOGIN
    if isinstance(error, smtplib.SMTPResponseException):
        return DeliveryAttempt.Problem.BUSY if 400 <= error.smtp_code < 500 else DeliveryAttempt.Problem.REFUSED
    if isinstance(error, smtplib.SMTPException):
        return DeliveryAttempt.Problem.OTHER
    # Connection refused, host not found, network unreachable, TLS handshake failed…
    return DeliveryAttempt.Problem.CONNECTION


# --- Invoice emails ------------------------------------------------------------------------
#
# PostgreSQL is the source of truth, not the broker. A delivery row is written in the applying
# transaction and says what is left to do; the Celery task only carries its id. A task that
# is lost (Redis restarted, publish failed) or dies with its worker changes nothing in the
# row, so the sweeper finds it again; a task delivered twice finds the row already claimed.
#
# ``delivery_send`` claims with a conditional UPDATE (queued → sending; or sent → sending, for
# copies the server asked to try again later), renders and talks SMTP outside any
# transaction, then records the outcome under a row lock, checking that the claim is still
# its own. The attempt row is written before the SMTP conversation, so a worker killed after
# the server's 250 but before recording leaves an "in progress" attempt that the sweeper
# turns into "unknown": the customer may then get the same message (same Message-ID) a
# second time, and ``Delivery.unknown_outcomes`` counts it.

ATTACHMENT_NAME = "Factura-%(number)s.pdf"
PDF_MIMETYPE = "application/pdf"
SWEEP_BATCH = 500  # rows per kind and sweep; the next sweep, a minute later, takes the rest


@dataclass(frozen=True)
class SendOutcome:
    """What the task should do next: ``retry_in`` seconds from now, run again; None: nothing."""

    retry_in: float | None = None


@dataclass(frozen=True)
class SweepResult:
    requeued: tuple[int, ...] = ()  # deliveries whose task must be queued again
    notices: tuple[int, ...] = ()  # deliveries with notices still to send
    reset: int = 0  # of the requeued, how many were taken back from a dead worker
    failed: int = 0  # deliveries the sweeper gave up on


# Recipients still to be sent to: never tried, or told to try later.
_WAITING = frozenset({DeliveryRecipient.State.PENDING, DeliveryRecipient.State.DEFERRED})
# Deliveries with a try to come: queued, or sent with copies the server refused for now (their
# next try sends to them alone).
_AWAITING_TRY = Q(state=Delivery.State.QUEUED) | Q(state=Delivery.State.SENT, next_attempt_at__isnull=False)


@dataclass(frozen=True)
class _Rendering:
    pdf: bytes | None
    report_format: ReportFormat | None
    override_problem: str = ""  # the email report failed and the print report went instead
    error: str = ""  # why no PDF at all
    timed_out: bool = False  # no PDF because the render ran out of time: worth another try


def _addresses(value: str) -> list[str]:
    """``value``'s addresses; one invalid address (stored before validation existed) is left
    out rather than making the invoice impossible to apply."""
    try:
        return parse_address_list(value)
    except ValidationError:
        valid: list[str] = []
        for part in value.replace(",", ";").split(";"):
            try:
                valid.extend(address for address in parse_address_list(part) if address not in valid)
            except ValidationError:
                logger.warning("Ignoring an invalid address in %r", value)
        return valid


def _skip_reason(invoice: Invoice, to: Sequence[str]) -> str:
    if not invoice.store.email_enabled:
        return Delivery.SkipReason.SENDING_OFF
    if invoice.customer.is_walk_in:
        return Delivery.SkipReason.WALK_IN
    if not invoice.customer.send_invoices_by_email:
        return Delivery.SkipReason.OPTED_OUT
    if not to:
        return Delivery.SkipReason.NO_ADDRESS
    return ""


def delivery_create(*, invoice: Invoice, requested_by: User | None) -> Delivery:
    """Decide whether ``invoice`` is emailed and record it: a ``skipped`` delivery with the
    reason, or a ``queued`` one whose task is enqueued when the surrounding transaction
    commits. Called by the ``invoice_applied`` receiver inside the applying transaction, so a
    rolled-back apply leaves no row and enqueues nothing."""
    to = _addresses(invoice.customer.emails)
    return _delivery_record(
        store=invoice.store,
        invoice=invoice,
        language=invoice.customer.language,
        requested_by=requested_by,
        to=to,
        skip_reason=_skip_reason(invoice, to),
    )


def _delivery_record(
    *,
    store: Store,
    invoice: Invoice | None,
    language: str,
    requested_by: User | None,
    to: Sequence[str],
    skip_reason: str,
) -> Delivery:
    """The one way a delivery row is written, for an applied invoice, a resend and a test email
    (``invoice`` None): ``skipped`` with ``skip_reason``, or ``queued`` to ``to`` and the
    store's copies, with its recipients, and its task enqueued when the surrounding
    transaction commits."""
    copies = [address for address in _addresses(store.copy_to) if address not in to]
    now = timezone.now()
    # No savepoint inside the applying transaction: a delivery that cannot be written fails
    # the apply as a whole, as any error of it does.
    with transaction.atomic(savepoint=False):
        delivery = Delivery.objects.create(
            kind=Delivery.Kind.INVOICE if invoice is not None else Delivery.Kind.TEST,
            invoice=invoice,
            store=store,
            state=Delivery.State.SKIPPED if skip_reason else Delivery.State.QUEUED,
            skip_reason=skip_reason,
            to=SEPARATOR.join(to),
            copies=SEPARATOR.join(copies) if not skip_reason else "",
            # Customers' replies reach the store: its Reply-To, else its own address.
            reply_to=store.reply_to or store.email,
            language=language,
            requested_by=requested_by,
            next_attempt_at=None if skip_reason else now,
        )
        if skip_reason:
            return delivery
        DeliveryRecipient.objects.bulk_create(
            [DeliveryRecipient(delivery=delivery, address=address, role=DeliveryRecipient.Role.TO) for address in to]
            + [
                DeliveryRecipient(delivery=delivery, address=address, role=DeliveryRecipient.Role.COPY)
                for address in copies
            ]
        )
        from mailer.tasks import enqueue_delivery  # the tasks module imports this one

        transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


def can_resend(user: User, invoice: Invoice) -> bool:
    """Whether ``user`` may send ``invoice`` again: an applied invoice, by support, a store admin
    of its business, or the cashier who applied it (while still working in its store)."""
    if invoice.status != Invoice.Status.APPLIED or not user.is_active:
        return False
    if user.is_support:
        return True
    if user.business_id != invoice.store.business_id:
        return False
    if user.is_store_admin:
        return True
    return user.is_cashier and invoice.applied_by_id == user.pk and user.can_work_in(invoice.store)


def delivery_resend(*, invoice: Invoice, requested_by: User, to: str | None = None) -> Delivery:
    """Email an applied invoice again, as a new delivery: to ``to`` (an address list, as people
    type it) when given, else to the customer's addresses; the store's copies as Bcc, as always.

    A resend is an explicit request of a person, so it goes out even when the store's sending is
    off or the customer did not ask for invoices by email. It still needs somewhere to go: the
    customer's addresses, or ``to``; the walk-in customer's addresses are never used, so for
    them ``to`` is required. The task is enqueued when the surrounding transaction commits.

    Raises PermissionDenied when ``requested_by`` may not resend it (see ``can_resend``), and
    ValidationError: ``not_applied`` (a draft or a voided invoice), ``{"to": ...}`` for an
    invalid list, ``walk_in`` or ``no_address`` when there is nowhere to send it.
    """
    with transaction.atomic():
        locked = Invoice.objects.select_related("store", "customer").select_for_update(of=("self",)).get(pk=invoice.pk)
        if locked.status != Invoice.Status.APPLIED:
            raise ValidationError(_("Only an applied invoice can be emailed."), code="not_applied")
        if not can_resend(requested_by, locked):
            raise PermissionDenied(_("You cannot email this invoice again."))
        if to is not None and to.strip():
            try:
                addresses = parse_address_list(to)
            except ValidationError as error:
                raise ValidationError({"to": error}) from error
        elif locked.customer.is_walk_in:
            raise ValidationError(
                {"to": ValidationError(_("Enter an address: the walk-in customer has none."), code="walk_in")}
            )
        else:
            addresses = _addresses(locked.customer.emails)
            if not addresses:
                raise ValidationError(
                    {"to": ValidationError(_("The customer has no email address: enter one."), code="no_address")}
                )
        return _delivery_record(
            store=locked.store,
            invoice=locked,
            language=locked.customer.language,
            requested_by=requested_by,
            to=addresses,
            skip_reason="",
        )


def retry_delay(attempt: int) -> float:
    """Seconds before try ``attempt + 1``: exponential from MAILER_RETRY_BASE_SECONDS, capped at
    MAILER_RETRY_MAX_DELAY_SECONDS (shorter than the broker's visibility timeout), with
    "equal jitter" (half fixed, half random) so a burst that failed together spreads out."""
    base = float(settings.MAILER_RETRY_BASE_SECONDS)
    cap = float(settings.MAILER_RETRY_MAX_DELAY_SECONDS)
    delay = min(cap, base * float(2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter needs no cryptography


def deliveries_to_send() -> QuerySet[Delivery]:
    """Deliveries with what a try reads: the invoice, its customer, the store and its reports
    (choosing the one to attach asks nothing more of the database) and who asked."""
    return Delivery.objects.select_related(
        "invoice__customer", "store__email_report", "store__print_report", "requested_by"
    )


# A try's two reads, their SQL compiled once per worker connection (finanzapro/queries.py):
# per email, compiling them cost a pool process more CPU than PostgreSQL spent answering them.
_delivery_to_send = CompiledRead(lambda delivery_id: deliveries_to_send().filter(pk=delivery_id))
_recipients_of = CompiledRead(lambda delivery_id: DeliveryRecipient.objects.filter(delivery_id=delivery_id))


def delivery_send(*, delivery_id: int) -> SendOutcome:
    """One try at delivery ``delivery_id``; what its task calls.

    Must run outside any transaction: it renders the PDF and talks to the mail server
    between its own short writes. Does nothing when another worker holds the delivery or it
    is already finished; says when to come back when it is not due yet.
    """
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = Delivery.objects.filter(_AWAITING_TRY, due, pk=delivery_id).update(
        state=Delivery.State.SENDING, claimed_at=now, attempt_count=F("attempt_count") + 1
    )
    if claimed != 1:
        # Someone else has it or it is finished; or the task came early (a countdown cut to
        # the cap, a timer that fired early): then the task is due again later.
        not_yet = (
            Delivery.objects.filter(_AWAITING_TRY, pk=delivery_id, next_attempt_at__gt=now)
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        return SendOutcome(retry_in=(not_yet - now).total_seconds()) if not_yet else SendOutcome()

    delivery = _delivery_to_send.get(delivery_id)  # DoesNotExist: deleted since the claim
    if delivery.invoice is not None and delivery.invoice.store_id == delivery.store_id:
        delivery.invoice.store = delivery.store  # the same row, already read
    number = delivery.attempt_count  # our claim: the outcome is recorded only while it holds
    # The PDF is in the customer's language (render_invoice_pdf sees to it); a render error is
    # recorded in the business's language, the notices'.
    with translation.override(settings.LANGUAGE_CODE):
        rendering = _render_report(delivery)
    if rendering.timed_out and not delivery.is_test:
        return _record_render_deferred(delivery, number, now, rendering)
    if rendering.pdf is None:
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, number=number, started_at=now, outcome=DeliveryAttempt.Outcome.ERROR
        )
        # Both reports' problems when the override and the print report both failed.
        detail = " ".join(problem for problem in (rendering.override_problem, rendering.error) if problem)
        return _record_not_sent(delivery, attempt, rendering, Delivery.FailureKind.NO_PDF, detail)

    # Every recipient, read once: this try sends to those still waiting, and the recording
    # settles the delivery from all of them (the claim keeps anybody else from changing them).
    rows = _recipients_of(delivery.pk)
    for row in rows:
        row.delivery = delivery  # as delivery.recipients.all() would have set it
    recipients = [r for r in rows if r.state in _WAITING]
    try:
        message = _delivery_email(delivery, recipients, rendering)
    except (ValueError, ValidationError) as unsendable:  # an address or header the email cannot hold
        logger.exception("Delivery %s: the email could not be built", delivery.pk)
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, number=number, started_at=now, outcome=DeliveryAttempt.Outcome.ERROR
        )
        detail = _error_detail(unsendable)
        return _record_not_sent(delivery, attempt, rendering, Delivery.FailureKind.UNSENDABLE, detail)

    attempt = DeliveryAttempt.objects.create(delivery=delivery, number=number, started_at=timezone.now())
    error: OSError | None = None
    refused: list[Refusal] = []
    withheld: list[str] = []
    customer = [r.address for r in recipients if r.role == DeliveryRecipient.Role.TO]
    try:
        refused = send_message(message, needed=customer)
    except NeededRecipientsRefused as customer_refused:  # nothing went to the copies either
        refused, withheld = refusals(customer_refused.recipients), customer_refused.withheld
    except smtplib.SMTPRecipientsRefused as everyone:
        refused = refusals(everyone.recipients)
    except OSError as failure:  # smtplib's errors, a refused connection, a timeout…
        error = failure
    return _record_sent(delivery, attempt, rows, recipients, rendering, refused, error, withheld=withheld)


def _render_pdf(delivery: Delivery, report_format: ReportFormat) -> bytes:
    """The invoice's PDF; for a test email, a sample invoice of the store in the recipient's language."""
    if delivery.invoice is None:
        return render_sample_pdf(store=delivery.store, report_format=report_format, language=delivery.language)
    return render_invoice_pdf(invoice=delivery.invoice, report_format=report_format)


def _render_report(delivery: Delivery) -> _Rendering:
    """The invoice's PDF with the store's email report; if that one cannot render, with the
    print report (the notice will say the override is broken); if neither, no PDF."""
    store = delivery.store
    chosen: ReportFormat | None = None
    try:
        chosen = report_format_for_email(store)
        return _Rendering(_render_pdf(delivery, chosen), chosen)
    except ReportRenderTimeout as error:  # a busy machine: the print report would wait as long
        logger.warning("Delivery %s: the render ran out of time: %s", delivery.pk, error)
        return _Rendering(None, None, error=str(error), timed_out=True)
    except ReportRenderError as error:  # the format, or the default one is missing
        logger.warning("Delivery %s: the email report did not render: %s", delivery.pk, error)
        problem = str(error)
    try:
        fallback = report_format_for_print(store)
        if chosen is None or fallback.pk == chosen.pk:  # nothing else to try
            return _Rendering(None, None, error=problem)
        return _Rendering(_render_pdf(delivery, fallback), fallback, problem)
    except ReportRenderError as error:
        logger.warning("Delivery %s: the print report did not render either: %s", delivery.pk, error)
        return _Rendering(None, None, problem, str(error))


def _invoice_of(delivery: Delivery) -> Invoice:
    """The invoice of a delivery that has one (every kind but a test email)."""
    if delivery.invoice is None:
        raise ValueError(f"Delivery {delivery.pk} is a test email: it has no invoice")
    return delivery.invoice


def _invoice_url(invoice: Invoice) -> str:
    return str(settings.SITE_URL).rstrip("/") + reverse("invoices:detail", args=[invoice.pk])


def _attachment_name(invoice: Invoice) -> str:
    return ATTACHMENT_NAME % {"number": invoice.number}


def _delivery_email(
    delivery: Delivery, recipients: Sequence[DeliveryRecipient], rendering: _Rendering
) -> EmailMultiAlternatives:
    """The email of one try: To the customer (or, for a test email, the person who asked for
    it), the store's copies as Bcc (never in a header), the PDF attached. A test email carries
    a sample invoice and lists the settings it was sent with."""
    store = delivery.store
    context: dict[str, Any]
    with translation.override(delivery.language):
        if delivery.is_test:
            template, context = (
                "store-test",
                {
                    "store": store,
                    "user": delivery.requested_by,
                    "sender_address": sender_address(),
                    "reply_to": delivery.reply_to,
                    "copies": delivery.copy_addresses,
                    # Named here, in the recipient's language: a report format's name is bilingual.
                    "report": str(rendering.report_format) if rendering.report_format else "",
                    "report_is_the_print_report": store.email_report_id is None,
                    "report_problem": rendering.override_problem,
                },
            )
            attachment_name = gettext("Sample-invoice.pdf")
        else:
            invoice = _invoice_of(delivery)
            template, context = "invoice", {"invoice": invoice, "customer": invoice.customer, "store": store}
            attachment_name = _attachment_name(invoice)
        rendered = render_email(template, context)
    to = [r.address for r in recipients if r.role == DeliveryRecipient.Role.TO]
    headers = {"Message-ID": delivery.message_id}
    if not to and delivery.to_addresses:
        # The copies' own try, once the customer has the email: the same message, addressed
        # to the customer in its header, but sent to the copies alone.
        headers["To"] = ", ".join(delivery.to_addresses)
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=store_sender(store),
        to=to,
        bcc=[r.address for r in recipients if r.role == DeliveryRecipient.Role.COPY],
        reply_to=[delivery.reply_to] if delivery.reply_to else None,
        headers=headers,
    )
    message.attach_alternative(rendered.html, "text/html")
    if rendering.pdf is not None:
        message.attach(attachment_name, rendering.pdf, PDF_MIMETYPE)
    return message


def _envelope_key(address: str) -> str:
    """``address`` as smtplib reports it back in a refusal (IDNA domain), for matching."""
    local, _at, domain = address.rpartition("@")
    return f"{local}@{punycode(domain)}".lower()


def _error_detail(error: BaseException) -> str:
    """The server's answer, or the error, in one line."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {decode_reply(error.smtp_error)}"
    if isinstance(error, OSError) and _is_timeout(error):
        return f"timed out waiting for the mail server ({error})"
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return f"{type(error).__name__}: {error}"


def _is_permanent(error: OSError) -> bool:
    """A 5xx answer to the message itself (DATA): it would be refused again. A 5xx to our
    login or our sender address is our configuration, which ops can fix: retried."""
    return (
        isinstance(error, smtplib.SMTPResponseException)
        and error.smtp_code >= 500
        and not isinstance(error, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused)
    )


def _window_start(delivery: Delivery) -> datetime:
    first = delivery.attempts.order_by("number").values_list("started_at", flat=True).first()
    return first or delivery.created_at


def _record_sent(
    delivery: Delivery,
    attempt: DeliveryAttempt,
    rows: Sequence[DeliveryRecipient],
    recipients: Sequence[DeliveryRecipient],
    rendering: _Rendering,
    refused: Sequence[Refusal],
    error: OSError | None,
    *,
    withheld: Sequence[str] = (),
) -> SendOutcome:
    """Record a try's SMTP outcome per recipient (``recipients``: those this try sent to, among
    all the delivery's ``rows``); ``withheld``: addresses the server would have taken but that
    were not sent to, since every customer address was refused."""
    now = timezone.now()
    all_accepted = error is None and not refused and not withheld
    if all_accepted and _settles_as_all_accepted(delivery, rows, recipients, rendering):
        if not _record_all_accepted(delivery, attempt, rendering, now):
            logger.warning("Delivery %s: try %s finished after losing its claim", delivery.pk, attempt.number)
        return SendOutcome()

    refused_by_key = {_envelope_key(refusal.address): refusal for refusal in refused}
    withheld_keys = {_envelope_key(address) for address in withheld}
    if error is not None:
        logger.warning("Delivery %s try %s not sent: %r", delivery.pk, attempt.number, error)
        outcome = DeliveryAttempt.Outcome.REJECTED if _is_permanent(error) else DeliveryAttempt.Outcome.DEFERRED
        code = error.smtp_code if isinstance(error, smtplib.SMTPResponseException) else None
        detail = _error_detail(error)
        problem = _problem(error)
    else:
        problem = DeliveryAttempt.Problem.NONE
        if refused:
            logger.warning("Delivery %s try %s: refused %s", delivery.pk, attempt.number, refused)
        # The try's outcome is the customer's; a try of the copies alone (the customer has
        # the email) is theirs.
        deciding = [r for r in recipients if r.role == DeliveryRecipient.Role.TO] or recipients
        deciding_refusals = [
            refused_by_key[key] for r in deciding if (key := _envelope_key(r.address)) in refused_by_key
        ]
        if len(deciding_refusals) < len(deciding):
            outcome = DeliveryAttempt.Outcome.ACCEPTED
        elif any(refusal.is_temporary for refusal in deciding_refusals):
            outcome = DeliveryAttempt.Outcome.DEFERRED
        else:
            outcome = DeliveryAttempt.Outcome.REJECTED
        code = deciding_refusals[0].code if deciding_refusals and outcome != "accepted" else None
        detail = "; ".join(f"{r.address}: {r.code} {r.reply}" for r in refused)

    with transaction.atomic():
        # Only the claim is read under the lock: the rest of the row is as ``delivery`` read
        # it just after claiming it, since nobody else changes a claimed delivery but the
        # sweeper, which takes the claim with it (state and attempt count).
        state, attempt_count = (
            Delivery.objects.select_for_update().filter(pk=delivery.pk).values_list("state", "attempt_count").get()
        )
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=now, outcome=outcome, smtp_code=code, detail=detail, problem=problem
        )
        if state != Delivery.State.SENDING or attempt_count != attempt.number:
            # The sweeper took the delivery back while this try overran; whoever holds it now
            # decides. This try is in its attempt row (and may have doubled the message).
            logger.warning("Delivery %s: try %s finished after losing its claim", delivery.pk, attempt.number)
            return SendOutcome()
        for recipient in recipients:
            if error is not None:
                recipient.state = (
                    DeliveryRecipient.State.FAILED if _is_permanent(error) else DeliveryRecipient.State.DEFERRED
                )
                recipient.smtp_code, recipient.smtp_reply = code, detail
            elif (refusal := refused_by_key.get(_envelope_key(recipient.address))) is not None:
                recipient.state = (
                    DeliveryRecipient.State.DEFERRED if refusal.is_temporary else DeliveryRecipient.State.FAILED
                )
                recipient.smtp_code, recipient.smtp_reply = refusal.code, refusal.reply
            elif _envelope_key(recipient.address) in withheld_keys:
                continue  # still to send, with the customer's email when it is retried
            else:
                recipient.state, recipient.sent_at = DeliveryRecipient.State.SENT, now
                recipient.smtp_code, recipient.smtp_reply = None, ""
        _recipients_save(recipients, ("state", "smtp_code", "smtp_reply", "sent_at"))
        delivery.report_format, delivery.report_problem = rendering.report_format, rendering.override_problem
        outcome_next = _settle(delivery, now, rows, last_detail=detail)
    return _notify_when_settled(outcome_next, delivery, rows, pdf=rendering.pdf)


def _settles_as_all_accepted(
    delivery: Delivery,
    rows: Sequence[DeliveryRecipient],
    recipients: Sequence[DeliveryRecipient],
    rendering: _Rendering,
) -> bool:
    """Whether a try whose every recipient the server accepted settles the delivery as plainly
    sent, with nothing else to record (``_record_all_accepted``): every recipient of the delivery
    was waiting for this try, the email report rendered, it is an invoice's email (a test email
    settles as the person waiting for it needs), and the database is PostgreSQL."""
    return (
        len(recipients) == len(rows)
        and not rendering.override_problem
        and not delivery.is_test
        and connection.vendor == "postgresql"
    )


@cache
def _all_accepted_sql() -> str:
    """The statement of ``_record_all_accepted``, with the models' table and column names."""

    def names(model: type[Any]) -> dict[str, str]:
        meta = model._meta
        return {"table": connection.ops.quote_name(meta.db_table)} | {
            field.name: connection.ops.quote_name(field.column) for field in meta.concrete_fields
        }

    d, a, r = names(Delivery), names(DeliveryAttempt), names(DeliveryRecipient)
    # The delivery's row is locked first (each later part waits for ``claimed``), in the order
    # of the sweeper's transaction, which locks it and then its attempts and recipients. Only
    # the models' quoted names are formatted in; every value is a parameter.
    return f"""
        WITH claimed AS (
            UPDATE {d["table"]} SET {d["state"]} = %(sent)s, {d["sent_at"]} = %(now)s,
                {d["next_attempt_at"]} = NULL, {d["report_format"]} = %(report_format)s,
                {d["report_problem"]} = ''
            WHERE {d["id"]} = %(delivery)s AND {d["state"]} = %(sending)s AND {d["attempt_count"]} = %(number)s
            RETURNING {d["id"]}
        ), attempt AS (
            UPDATE {a["table"]} SET {a["finished_at"]} = %(now)s, {a["outcome"]} = %(accepted)s,
                {a["smtp_code"]} = NULL, {a["detail"]} = '', {a["problem"]} = %(no_problem)s
            WHERE {a["id"]} = %(attempt)s AND (SELECT count(*) FROM claimed) >= 0
        ), recipients AS (
            UPDATE {r["table"]} SET {r["state"]} = %(recipient_sent)s, {r["sent_at"]} = %(now)s,
                {r["smtp_code"]} = NULL, {r["smtp_reply"]} = ''
            WHERE {r["delivery"]} = %(delivery)s AND EXISTS (SELECT FROM claimed)
        )
        SELECT count(*) FROM claimed
    """  # noqa: S608 -- a data-modifying CTE runs whether or not the query reads it


def _record_all_accepted(delivery: Delivery, attempt: DeliveryAttempt, rendering: _Rendering, now: datetime) -> bool:
    """``_record_sent`` for its most common outcome, on PostgreSQL: the server accepted every
    recipient of the delivery, each of them tried for the first time or again. What the
    general recording would write, with its rules (the attempt always; the recipients and the
    delivery only while the claim holds), in one statement instead of a transaction of six
    (BEGIN, the locked read, three UPDATEs, COMMIT): per email, 1.1-1.7 ms less of a pool
    process's CPU and 0.1-0.4 ms less of PostgreSQL's (`make bench`'s pipeline, 500 invoices,
    two rounds each way). Returns whether the claim held."""
    with connection.cursor() as cursor:
        cursor.execute(
            _all_accepted_sql(),
            {
                "delivery": delivery.pk,
                "attempt": attempt.pk,
                "number": attempt.number,
                "now": now,
                "sent": Delivery.State.SENT,
                "sending": Delivery.State.SENDING,
                "report_format": rendering.report_format.pk if rendering.report_format else None,
                "accepted": DeliveryAttempt.Outcome.ACCEPTED,
                "no_problem": DeliveryAttempt.Problem.NONE,
                "recipient_sent": DeliveryRecipient.State.SENT,
            },
        )
        (claimed,) = cursor.fetchone()
    return bool(claimed)


def _recipients_save(recipients: Sequence[DeliveryRecipient], fields: Sequence[str]) -> None:
    """Writes ``fields`` of ``recipients``: one plain UPDATE per set of values, since a try
    usually ends alike for all of its recipients (cheaper than bulk_update's CASE per row)."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for recipient in recipients:
        groups[tuple(getattr(recipient, field) for field in fields)].append(recipient.pk)
    for values, pks in groups.items():
        DeliveryRecipient.objects.filter(pk__in=pks).update(**dict(zip(fields, values, strict=True)))


def _notify_when_settled(
    outcome: SendOutcome, delivery: Delivery, rows: Sequence[DeliveryRecipient], *, pdf: bytes | None = None
) -> SendOutcome:
    """After the recording transaction: once nothing more will be tried, send the notices it
    created (none when nobody needs telling: no query then)."""
    if outcome.retry_in is None and _needs_notices(delivery, rows):
        delivery_notices_send(delivery_id=delivery.pk, pdf=pdf)
    return outcome


def _customer_detail(customer: Sequence[DeliveryRecipient], *, fallback: str) -> str:
    """What the server last said about the customer's addresses, in one line."""
    answers = [(r.address, f"{r.smtp_code or ''} {r.smtp_reply}".strip()) for r in customer if r.smtp_reply]
    if not answers:
        return fallback
    if len(customer) == 1:
        return answers[0][1]
    return "; ".join(f"{address}: {answer}" for address, answer in answers)


def _settle(delivery: Delivery, now: datetime, rows: Sequence[DeliveryRecipient], *, last_detail: str) -> SendOutcome:
    """Inside the recording transaction, with ``delivery`` locked: the delivery's next state
    from its recipients' (``rows``, all of them, as recorded). Only the customer's addresses
    decide; copies are recorded."""
    customer = [r for r in rows if r.role == DeliveryRecipient.Role.TO]
    unsettled = [r for r in customer if r.state in _WAITING]
    accepted = [r.sent_at for r in customer if r.sent_at is not None]
    copies_waiting = [r for r in rows if r.role == DeliveryRecipient.Role.COPY and r.state in _WAITING]
    # A test email is not retried: the person who asked for it is waiting for the answer.
    # Copies the server refused for now are retried on their own once the customer has the
    # email, within the same window; the delivery is sent meanwhile.
    if (unsettled or (accepted and copies_waiting)) and not delivery.is_test:
        delay = retry_delay(delivery.attempt_count)
        deadline = _window_start(delivery) + timedelta(seconds=float(settings.MAILER_RETRY_WINDOW_SECONDS))
        if now + timedelta(seconds=delay) <= deadline:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            if unsettled:
                delivery.state = Delivery.State.QUEUED
            else:
                delivery.state, delivery.sent_at = Delivery.State.SENT, min(accepted)
            delivery.save(update_fields=["state", "sent_at", "next_attempt_at", "report_format", "report_problem"])
            return SendOutcome(retry_in=delay)
    kind = Delivery.FailureKind.GAVE_UP if unsettled else Delivery.FailureKind.REJECTED
    _finish(delivery, now, rows, kind=kind, detail=_customer_detail(customer, fallback=last_detail))
    return SendOutcome()


def _finish(
    delivery: Delivery, now: datetime, rows: Sequence[DeliveryRecipient] | None = None, *, kind: str, detail: str
) -> None:
    """Inside a transaction, with ``delivery`` locked: nothing more will be tried. ``sent`` if
    the server took it for one of the customer's addresses, else ``failed`` (``kind``,
    ``detail``); what still waited is refused for good, and the notices are created.
    ``rows``: every recipient of the delivery, when the caller has them."""
    rows = list(delivery.recipients.all()) if rows is None else rows
    accepted = [r.sent_at for r in rows if r.role == DeliveryRecipient.Role.TO and r.sent_at is not None]
    # A copy still waiting is refused for good (its retries are over); one never tried (the
    # customer's email did not go) is "withheld", not refused.
    waiting = [r for r in rows if r.state in _WAITING]
    for recipient in waiting:
        never_tried = (
            recipient.role == DeliveryRecipient.Role.COPY and recipient.state == DeliveryRecipient.State.PENDING
        )
        withheld = never_tried and not accepted
        recipient.state = DeliveryRecipient.State.WITHHELD if withheld else DeliveryRecipient.State.FAILED
    _recipients_save(waiting, ("state",))
    if accepted:
        delivery.state, delivery.sent_at = Delivery.State.SENT, min(accepted)
    else:
        delivery.state, delivery.failed_at = Delivery.State.FAILED, now
        delivery.failure_kind, delivery.failure_detail = kind, detail
    delivery.next_attempt_at = None
    delivery.save(
        update_fields=[
            "state",
            "sent_at",
            "failed_at",
            "failure_kind",
            "failure_detail",
            "next_attempt_at",
            "report_format",
            "report_problem",
            "unknown_outcomes",
        ]
    )
    _notices_create(delivery, rows)


def _record_render_deferred(delivery: Delivery, number: int, started: datetime, rendering: _Rendering) -> SendOutcome:
    """The PDF ran out of time (a busy worker machine, not a broken format): the try is recorded
    as deferred and the delivery is tried again like one the mail server asked to retry, until
    the retry window ends; nothing was sent to anybody."""
    now = timezone.now()
    detail = rendering.error
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        DeliveryAttempt.objects.create(
            delivery=locked,
            number=number,
            started_at=started,
            finished_at=now,
            outcome=DeliveryAttempt.Outcome.DEFERRED,
            detail=detail,
        )
        if locked.state != Delivery.State.SENDING or locked.attempt_count != number:
            return SendOutcome()
        rows = list(locked.recipients.all())
        outcome = _settle(locked, now, rows, last_detail=detail)
    return _notify_when_settled(outcome, locked, rows)


def _record_not_sent(
    delivery: Delivery, attempt: DeliveryAttempt, rendering: _Rendering, kind: str, detail: str
) -> SendOutcome:
    """Nothing could be sent and trying again would not help: failed, and the store is told."""
    now = timezone.now()
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(finished_at=now, detail=detail)
        if locked.state != Delivery.State.SENDING or locked.attempt_count != attempt.number:
            return SendOutcome()
        locked.report_format, locked.report_problem = rendering.report_format, rendering.override_problem
        _finish(locked, now, kind=kind, detail=detail)
    delivery_notices_send(delivery_id=delivery.pk, pdf=rendering.pdf)
    return SendOutcome()


# --- Failure notices ----------------------------------------------------------------------


def _notice_addresses(delivery: Delivery, *, failed: bool) -> list[str]:
    """Who is told: for a failed email, the user who applied the invoice (when the store
    wants it) and the store's failure contacts; for one that went out with a problem (a
    refused copy, a broken email report), the failure contacts."""
    addresses: list[str] = []
    user = delivery.requested_by
    if failed and delivery.store.notify_applying_user and user is not None and user.email:
        addresses.extend(_addresses(user.email))
    addresses.extend(address for address in _addresses(delivery.store.failure_contacts) if address not in addresses)
    return addresses


def _notices_create(delivery: Delivery, rows: Sequence[DeliveryRecipient]) -> None:
    """In the transaction that settles the delivery: one notice row per address to tell,
    created once (the unique constraint makes a second settling a no-op)."""
    if not _needs_notices(delivery, rows):
        return
    failed = delivery.state == Delivery.State.FAILED
    FailureNotice.objects.bulk_create(
        [FailureNotice(delivery=delivery, address=address) for address in _notice_addresses(delivery, failed=failed)],
        ignore_conflicts=True,
    )


def _needs_notices(delivery: Delivery, rows: Sequence[DeliveryRecipient]) -> bool:
    """Whether a settled delivery tells anybody: it failed, or went out with a problem (a
    refused copy, a broken email report). Never for a test email: the person who asked for it
    sees the outcome on the page."""
    if delivery.is_test:
        return False
    failed = delivery.state == Delivery.State.FAILED
    return failed or bool(delivery.report_problem) or any(r.state == DeliveryRecipient.State.FAILED for r in rows)


def delivery_notices_send(*, delivery_id: int, pdf: bytes | None = None) -> int:
    """Send the delivery's pending notices, each claimed first (pending → sending) so none goes
    twice; returns how many were sent. A notice that fails is logged and recorded as failed:
    notices are never retried, so a broken address or server cannot make them loop.

    ``pdf`` is the invoice's PDF when the caller has it; otherwise it is rendered again with
    the report the email used, if any. Must run outside any transaction.
    """
    pending = list(
        FailureNotice.objects.filter(delivery_id=delivery_id, state=FailureNotice.State.PENDING).values_list(
            "pk", flat=True
        )
    )
    if not pending:
        return 0
    delivery = Delivery.objects.select_related("invoice__customer", "store", "requested_by", "report_format").get(
        pk=delivery_id
    )
    if pdf is None and delivery.report_format is not None:
        try:
            pdf = _render_pdf(delivery, delivery.report_format)
        except ReportRenderError:
            pdf = None
    sent = 0
    for notice_id in pending:
        claimed = FailureNotice.objects.filter(pk=notice_id, state=FailureNotice.State.PENDING).update(
            state=FailureNotice.State.SENDING, claimed_at=timezone.now()
        )
        if claimed != 1:
            continue
        notice = FailureNotice.objects.get(pk=notice_id)
        error = ""
        try:
            refused = send_message(_notice_email(delivery, notice.address, pdf))
            if refused:
                error = "; ".join(f"{r.code} {r.reply}" for r in refused)
        except smtplib.SMTPRecipientsRefused as everyone:
            error = "; ".join(f"{r.code} {r.reply}" for r in refusals(everyone.recipients))
        except (OSError, ValueError) as failure:
            error = _error_detail(failure)
        if error:
            logger.error(
                "Failure notice %s of delivery %s to %s not sent: %s", notice.pk, delivery_id, notice.address, error
            )
            FailureNotice.objects.filter(pk=notice.pk).update(state=FailureNotice.State.FAILED, error=error)
        else:
            FailureNotice.objects.filter(pk=notice.pk).update(state=FailureNotice.State.SENT, sent_at=timezone.now())
            sent += 1
    return sent


def _notice_email(delivery: Delivery, address: str, pdf: bytes | None) -> EmailMultiAlternatives:
    """A notice, in Spanish: stores have no language of their own, and the business's is es."""
    invoice = _invoice_of(delivery)
    rows = list(delivery.recipients.all())
    with translation.override(settings.LANGUAGE_CODE):
        context = {
            "delivery": delivery,
            "invoice": invoice,
            "customer": invoice.customer,
            "store": delivery.store,
            "failed": delivery.state == Delivery.State.FAILED,
            "reason": delivery.failure_reason,
            "to": delivery.to_addresses,
            "refused_customer": [r for r in rows if r.role == "to" and r.state == DeliveryRecipient.State.FAILED],
            "refused_copies": [r for r in rows if r.role == "copy" and r.state == DeliveryRecipient.State.FAILED],
            "report_problem": delivery.report_problem,
            "report_format": delivery.report_format,
            "invoice_url": _invoice_url(invoice),
            "pdf_attached": pdf is not None,
        }
        rendered = render_email("failure-notice", context)
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=store_sender(delivery.store),
        to=[address],
        headers={"References": delivery.message_id},
    )
    message.attach_alternative(rendered.html, "text/html")
    if pdf is not None:
        message.attach(_attachment_name(invoice), pdf, PDF_MIMETYPE)
    return message


# --- The sweeper --------------------------------------------------------------------------


def deliveries_sweep(*, now: datetime | None = None) -> SweepResult:
    """Find what the broker lost, from PostgreSQL: the beat task runs it every minute.

    - ``queued`` and due for longer than MAILER_SWEEP_QUEUED_AFTER_SECONDS, or ``sent`` with
      its copies' next try due as long: its task message was lost (or the queue is that
      long); queued again. A duplicate is harmless: the claim lets one through.
    - ``sending`` for longer than MAILER_SWEEP_SENDING_AFTER_SECONDS (longer than the hard
      time limit, so its worker is dead): taken back to ``queued`` (``sent`` when the try was
      the copies' own) with a conditional update, its try in progress marked "unknown", or
      finished when the retry window is over.
    - notices still pending after the queued threshold: sent again by a task; notices left
      sending by a dead worker: marked failed, never sent twice.
    """
    now = now or timezone.now()
    queued_cutoff = now - timedelta(seconds=float(settings.MAILER_SWEEP_QUEUED_AFTER_SECONDS))
    sending_cutoff = now - timedelta(seconds=float(settings.MAILER_SWEEP_SENDING_AFTER_SECONDS))
    window = timedelta(seconds=float(settings.MAILER_RETRY_WINDOW_SECONDS))

    reset: list[int] = []
    failed: list[int] = []
    stuck = Delivery.objects.filter(state=Delivery.State.SENDING, claimed_at__lt=sending_cutoff)
    for delivery_id in list(stuck.values_list("pk", flat=True)[:SWEEP_BATCH]):
        with transaction.atomic():
            locked = (
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(pk=delivery_id, state=Delivery.State.SENDING, claimed_at__lt=sending_cutoff)
                .first()
            )
            if locked is None:  # finished, or being recorded right now
                continue
            unknown = locked.attempts.filter(outcome=DeliveryAttempt.Outcome.IN_PROGRESS).update(
                outcome=DeliveryAttempt.Outcome.UNKNOWN,
                finished_at=now,
                detail="The worker stopped during the send; the server may have taken the message.",
            )
            if unknown:
                logger.warning("Delivery %s: a try ended without an outcome; the message may arrive twice", locked.pk)
            locked.unknown_outcomes += unknown
            if _window_start(locked) + window < now:
                customer = list(locked.recipients.filter(role=DeliveryRecipient.Role.TO))
                fallback = "the worker sending it stopped before it could finish"
                _finish(
                    locked, now, kind=Delivery.FailureKind.GAVE_UP, detail=_customer_detail(customer, fallback=fallback)
                )
                failed.append(locked.pk)
            else:
                # Back to sent when the customer has the email and the try was the copies' own.
                locked.state = Delivery.State.SENT if locked.sent_at else Delivery.State.QUEUED
                locked.next_attempt_at = now
                locked.save(update_fields=["state", "next_attempt_at", "unknown_outcomes"])
                reset.append(locked.pk)

    overdue = Delivery.objects.filter(
        Q(_AWAITING_TRY, next_attempt_at__lt=queued_cutoff)
        | Q(state=Delivery.State.QUEUED, next_attempt_at__isnull=True, created_at__lt=queued_cutoff)
    )
    lost = list(overdue.values_list("pk", flat=True)[:SWEEP_BATCH])
    # Due now, not overdue: the same row is not queued again by the next sweep unless it is
    # still waiting a threshold later.
    Delivery.objects.filter(_AWAITING_TRY, pk__in=lost).update(next_attempt_at=now)
    if lost:
        logger.warning("Queued again %s deliveries whose task was lost or late: %s", len(lost), lost)

    FailureNotice.objects.filter(state=FailureNotice.State.SENDING, claimed_at__lt=sending_cutoff).update(
        state=FailureNotice.State.FAILED, error="The worker sending it stopped; not sent again."
    )
    late_notices = FailureNotice.objects.filter(state=FailureNotice.State.PENDING, created_at__lt=queued_cutoff)
    notices = {*late_notices.values_list("delivery_id", flat=True)[:SWEEP_BATCH], *failed}
    return SweepResult(requeued=(*reset, *lost), notices=tuple(sorted(notices)), reset=len(reset), failed=len(failed))
