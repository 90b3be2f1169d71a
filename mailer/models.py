"""Invoice emails: one ``Delivery`` per email of an applied invoice, with what became of it.

PostgreSQL, not the broker, is the source of truth: a delivery is written in the applying
transaction, and its state says what is left to do. The Celery task only carries the row's
id; a lost message or a dead worker is found again by the sweeper from these rows.

States::

    skipped                              (decided when the invoice is applied: nothing to send)
    queued ──claim──▶ sending ──▶ sent   (the server took it for a customer's address)
      ▲                  │  └───▶ failed (refused for good, retries exhausted, no PDF)
      └──── retry ───────┘
    sent ───claim──▶ sending ──▶ sent    (copies the server refused for now, tried again on
                                          their own once the customer has the email)

Retries (4xx, a refused connection, a timeout; or the sweeper) go on until
MAILER_RETRY_WINDOW_SECONDS after the first try.
"""

from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from finanzapro.email_addresses import parse_address_list
from invoices.models import Invoice, ReportFormat
from stores.models import Store


def new_message_id() -> str:
    """A Message-ID on our sending domain, fixed when the delivery is created: every try of
    the same email carries it, so a message that arrives twice is recognisably the same."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "finanzapro.local"
    return make_msgid(domain=domain)


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def in_flight(self) -> "DeliveryQuerySet":
        return self.filter(state__in=[Delivery.State.QUEUED, Delivery.State.SENDING])


class Delivery(models.Model):
    """One email of an invoice to its customer, and its copies; or a store's test email (a
    sample invoice to the person who asked for it), which goes through the same steps."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        TEST = "test", _("Test email")

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Not sent")

    class SkipReason(models.TextChoices):
        SENDING_OFF = "sending_off", _("Sending invoices by email is off for this store")
        OPTED_OUT = "opted_out", _("The customer does not receive invoices by email")
        NO_ADDRESS = "no_address", _("The customer has no email address")
        WALK_IN = "walk_in", _("Walk-in customer")

    class FailureKind(models.TextChoices):
        REJECTED = "rejected", _("The mail server rejected the address")
        GAVE_UP = "gave_up", _("Could not be delivered in time")
        NO_PDF = "no_pdf", _("The invoice PDF could not be made")
        UNSENDABLE = "unsendable", _("The email could not be built")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.INVOICE)
    # None for a test email, which carries a sample invoice.
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        related_name="email_deliveries",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    # The invoice's store, kept on the row so the store's email pages filter without a join.
    store = models.ForeignKey(Store, verbose_name=_("store"), related_name="email_deliveries", on_delete=models.PROTECT)
    state = models.CharField(_("state"), max_length=10, choices=State.choices)
    skip_reason = models.CharField(_("reason not sent"), max_length=20, choices=SkipReason.choices, blank=True)

    to = models.TextField(_("to"), blank=True, help_text=_("The customer's addresses."))
    copies = models.TextField(_("copies"), blank=True, help_text=_("The store's copies, sent as Bcc."))
    reply_to = models.EmailField(_("reply-to"), blank=True)
    language = models.CharField(_("language"), max_length=8, default="es")
    report_format = models.ForeignKey(
        ReportFormat,
        verbose_name=_("report sent"),
        related_name="+",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    report_problem = models.TextField(
        _("report problem"),
        blank=True,
        help_text=_("Why the store's email report could not be used, when the print report went instead."),
    )
    requested_by = models.ForeignKey(
        User, verbose_name=_("requested by"), related_name="+", on_delete=models.SET_NULL, null=True, blank=True
    )
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True, default=new_message_id)

    attempt_count = models.PositiveIntegerField(_("tries"), default=0)
    next_attempt_at = models.DateTimeField(_("next try at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    failure_kind = models.CharField(_("failure"), max_length=20, choices=FailureKind.choices, blank=True)
    failure_detail = models.TextField(_("failure detail"), blank=True, help_text=_("The server's answer or the error."))
    # Tries whose worker died during the SMTP conversation: the server may have taken the
    # message, so the customer may have it twice (with the same Message-ID).
    unknown_outcomes = models.PositiveSmallIntegerField(_("tries with unknown outcome"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("email delivery")
        verbose_name_plural = _("email deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweeper's two questions: queued and overdue; sending for too long.
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(state="queued"), name="delivery_queued_due_idx"
            ),
            models.Index(fields=["claimed_at"], condition=models.Q(state="sending"), name="delivery_sending_idx"),
            # And sent deliveries whose copies are to be tried again.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="sent", next_attempt_at__isnull=False),
                name="delivery_copies_due_idx",
            ),
            # The Correos pages: a store's (or business's) invoice emails by state and date. Only
            # invoice emails, as the pages filter them: the per-state counts are read off the index
            # alone, without the rows, and a page of the list straight from it.
            models.Index(
                fields=["store", "state", "-created_at"],
                condition=models.Q(kind="invoice"),
                name="delivery_store_state_idx",
            ),
            models.Index(
                fields=["store", "-created_at"], condition=models.Q(kind="invoice"), name="delivery_store_date_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state="skipped", skip_reason__gt="")
                | (~models.Q(state="skipped") & models.Q(skip_reason="")),
                name="delivery_skip_reason_iff_skipped",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="invoice", invoice__isnull=False) | models.Q(kind="test", invoice__isnull=True),
                name="delivery_invoice_iff_not_test",
            ),
        ]

    def __str__(self) -> str:
        what = self.invoice if self.invoice_id is not None else self.get_kind_display()
        return f"{what} → {self.to or '—'} ({self.get_state_display()})"

    @property
    def is_test(self) -> bool:
        return self.kind == self.Kind.TEST

    @property
    def to_addresses(self) -> list[str]:
        return parse_address_list(self.to)

    @property
    def copy_addresses(self) -> list[str]:
        return parse_address_list(self.copies)

    @property
    def failure_reason(self) -> str:
        """Why the email failed, in plain words, in the active language."""
        if not self.failure_kind:
            return ""
        params = {"detail": self.failure_detail, "to": ", ".join(self.to_addresses)}
        if self.failure_kind == self.FailureKind.REJECTED:
            text = gettext(
                "The customer's mail server rejected the address %(to)s: %(detail)s. "
                "Check that the address is spelled correctly."
            )
        elif self.failure_kind == self.FailureKind.GAVE_UP:
            text = gettext(
                "The email could not be delivered to %(to)s, and FinanzaPro stopped trying. "
                "The last answer was: %(detail)s."
            )
        elif self.failure_kind == self.FailureKind.NO_PDF:
            text = gettext("The invoice PDF could not be made, so no email was sent: %(detail)s")
        else:
            text = gettext("The email could not be built, so it was not sent: %(detail)s")
        return text % params


class DeliveryRecipient(models.Model):
    """One address of a delivery and what the server said about it."""

    class Role(models.TextChoices):
        TO = "to", _("Customer")
        COPY = "copy", _("Copy")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DEFERRED = "deferred", _("Refused for now")
        SENT = "sent", _("Accepted")
        FAILED = "failed", _("Refused")
        # A copy held back: the customer's email was not delivered, so neither was its copy.
        WITHHELD = "withheld", _("Not sent, as the customer's email was not delivered")

    delivery = models.ForeignKey(Delivery, related_name="recipients", on_delete=models.CASCADE)
    address = models.EmailField(_("address"))
    role = models.CharField(_("role"), max_length=4, choices=Role.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    smtp_code = models.PositiveSmallIntegerField(_("SMTP code"), null=True, blank=True)
    smtp_reply = models.TextField(_("server's answer"), blank=True)
    sent_at = models.DateTimeField(_("accepted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        # By the delivery's id, not "delivery" (its newest-first ordering): that joined the
        # deliveries table into every read of one delivery's rows.
        ordering = ["delivery_id", "-role", "id"]  # the customer ("to") before the copies
        constraints = [models.UniqueConstraint(fields=["delivery", "address"], name="delivery_recipient_once")]

    def __str__(self) -> str:
        return self.address


class DeliveryAttempt(models.Model):
    """One try at sending. Written with outcome "in progress" before the SMTP conversation,
    so a worker that dies in the middle leaves a trace the sweeper turns into "unknown"."""

    class Outcome(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        ACCEPTED = "accepted", _("Accepted")
        DEFERRED = "deferred", _("Refused for now")
        REJECTED = "rejected", _("Rejected")
        ERROR = "error", _("Not sent")
        UNKNOWN = "unknown", _("Unknown: the worker stopped during the send")

    class Problem(models.TextChoices):
        """What went wrong with the whole try, when something did (a refused address is the
        recipient's state instead): says in plain words what to do about it."""

        NONE = "", _("None")
        CONNECTION = "connection", _("Could not connect to the mail server")
        TIMEOUT = "timeout", _("The mail server did not answer in time")
        LOGIN = "login", _("The mail server did not accept the user name or password")
        BUSY = "busy", _("The mail server could not take the email for now")
        REFUSED = "refused", _("The mail server refused the email")
        OTHER = "other", _("Another error")

    delivery = models.ForeignKey(Delivery, related_name="attempts", on_delete=models.CASCADE)
    number = models.PositiveIntegerField(_("number"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices, default=Outcome.IN_PROGRESS)
    smtp_code = models.PositiveSmallIntegerField(_("SMTP code"), null=True, blank=True)
    detail = models.TextField(_("server's answer or error"), blank=True)
    problem = models.CharField(_("problem"), max_length=12, choices=Problem.choices, blank=True, default="")

    class Meta:
        verbose_name = _("try")
        verbose_name_plural = _("tries")
        ordering = ["delivery_id", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_number")]

    def __str__(self) -> str:
        return f"#{self.number} {self.get_outcome_display()}"


class FailureNotice(models.Model):
    """An email telling the store that an invoice email failed (or had a problem).

    The row is created, unique per delivery and address, before anything is sent; sending
    claims it (pending → sending), so a retried or duplicated task never sends a second one,
    and a notice that fails is recorded, never retried in a loop.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    delivery = models.ForeignKey(Delivery, related_name="notices", on_delete=models.CASCADE)
    address = models.EmailField(_("address"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("failure notice")
        verbose_name_plural = _("failure notices")
        ordering = ["delivery_id", "id"]
        constraints = [models.UniqueConstraint(fields=["delivery", "address"], name="failure_notice_once")]
        indexes = [
            # The sweeper's: notices left pending, or sending by a worker that died.
            models.Index(fields=["created_at"], condition=models.Q(state="pending"), name="notice_pending_idx"),
            models.Index(fields=["claimed_at"], condition=models.Q(state="sending"), name="notice_sending_idx"),
        ]

    def __str__(self) -> str:
        return self.address
