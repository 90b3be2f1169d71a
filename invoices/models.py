from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User
from finanzapro.email_addresses import EmailListField


class CustomerQuerySet(models.QuerySet["Customer"]):
    def for_user(self, user: User | AnonymousUser) -> "CustomerQuerySet":
        """Customers of the user's business; every business's for support."""
        if not isinstance(user, User) or not user.is_active:
            return self.none()
        if user.is_support:
            return self.all()
        if user.business_id is None:
            return self.none()
        return self.filter(business_id=user.business_id)


class Customer(models.Model):
    class Language(models.TextChoices):
        SPANISH = "es", _("Spanish")
        ENGLISH = "en", _("English")

    business = models.ForeignKey(
        Business, verbose_name=_("business"), related_name="customers", on_delete=models.PROTECT
    )
    name = models.CharField(_("name"), max_length=200)
    legal_id = models.CharField(_("legal id"), max_length=30, blank=True)
    emails = EmailListField(_("email addresses"), help_text=_("One or more addresses, separated by semicolons."))
    send_invoices_by_email = models.BooleanField(_("Send invoices by email"), default=False)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.SPANISH)
    is_walk_in = models.BooleanField(
        _("walk-in customer"), default=False, help_text=_("The cash customer: never receives email.")
    )

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["business"], condition=models.Q(is_walk_in=True), name="one_walk_in_customer_per_business"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReportFormatQuerySet(models.QuerySet["ReportFormat"]):
    def active(self) -> "ReportFormatQuerySet":
        return self.filter(is_active=True)


class ReportFormat(models.Model):
    """A way of printing an invoice to PDF, managed by support; built-in rows come from a migration."""

    class PageSize(models.TextChoices):
        ROLL_80MM = "80mm", _("80 mm roll")
        LETTER = "letter", _("Letter")
        A4 = "A4", _("A4")

    code = models.SlugField(_("code"), max_length=50, unique=True)
    name_es = models.CharField(_("name (Spanish)"), max_length=100)
    name_en = models.CharField(_("name (English)"), max_length=100)
    template_name = models.CharField(
        _("template"), max_length=200, help_text=_("A template of the project, under templates/reports/.")
    )
    page_size = models.CharField(_("page size"), max_length=10, choices=PageSize.choices)
    is_active = models.BooleanField(_("active"), default=True)
    show_logo = models.BooleanField(_("show logo"), default=True)
    footer_text = models.TextField(_("footer text"), blank=True)
    accent_color = models.CharField(_("accent colour"), max_length=7, default="#0b6e4f")

    objects = ReportFormatQuerySet.as_manager()

    class Meta:
        verbose_name = _("report format")
        verbose_name_plural = _("report formats")
        ordering = ["code"]

    def __str__(self) -> str:
        from django.utils.translation import get_language

        return self.name_en if (get_language() or "es").startswith("en") else self.name_es


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def for_user(self, user: User | AnonymousUser) -> "InvoiceQuerySet":
        """Invoices of the stores ``user`` works in, as ``Store.objects.for_user`` decides:
        tenancy has one definition."""
        from stores.models import Store  # stores.models imports this module

        if isinstance(user, User) and user.is_active and user.is_support:
            return self.all()
        return self.filter(store__in=Store.objects.for_user(user))


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        APPLIED = "applied", _("Applied")
        VOIDED = "voided", _("Voided")

    store = models.ForeignKey(
        "stores.Store", verbose_name=_("store"), related_name="invoices", on_delete=models.PROTECT
    )
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), related_name="invoices", on_delete=models.PROTECT
    )
    currency = models.CharField(_("currency"), max_length=3)
    number = models.PositiveIntegerField(_("number"), null=True, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT, editable=False)
    notes = models.TextField(_("notes"), blank=True)

    subtotal = models.DecimalField(_("subtotal"), max_digits=16, decimal_places=2, default=Decimal(0))
    discount_total = models.DecimalField(_("discount"), max_digits=16, decimal_places=2, default=Decimal(0))
    tax_total = models.DecimalField(_("tax"), max_digits=16, decimal_places=2, default=Decimal(0))
    total = models.DecimalField(_("total"), max_digits=16, decimal_places=2, default=Decimal(0))

    created_by = models.ForeignKey(User, verbose_name=_("created by"), related_name="+", on_delete=models.PROTECT)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    applied_by = models.ForeignKey(
        User, verbose_name=_("applied by"), related_name="+", on_delete=models.PROTECT, null=True, blank=True
    )
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True, db_index=True)
    voided_by = models.ForeignKey(
        User, verbose_name=_("voided by"), related_name="+", on_delete=models.PROTECT, null=True, blank=True
    )
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    void_reason = models.TextField(_("reason for voiding"), blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "number"], condition=models.Q(number__isnull=False), name="invoice_number_per_store"
            ),
            models.CheckConstraint(
                condition=models.Q(status="draft", number__isnull=True)
                | (~models.Q(status="draft") & models.Q(number__isnull=False, applied_at__isnull=False)),
                name="invoice_number_iff_applied",
            ),
        ]
        indexes = [
            models.Index(fields=["store", "status", "-created_at"], name="invoice_store_status_idx"),
            # The invoice list: a store's invoices in the list's order, a page read off the index.
            models.Index(fields=["store", "-created_at", "-id"], name="invoice_store_created_idx"),
        ]

    def __str__(self) -> str:
        if self.number is None:
            return str(_("Draft invoice #%(id)s") % {"id": self.pk})
        return str(_("Invoice %(number)s") % {"number": self.number})

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, related_name="lines", on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField(_("position"))
    description = models.CharField(_("description"), max_length=300)
    quantity = models.DecimalField(
        _("quantity"), max_digits=12, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))]
    )
    unit_price = models.DecimalField(
        _("unit price"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal(0))]
    )
    discount_percent = models.DecimalField(
        _("discount %"),
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    tax_rate = models.DecimalField(
        _("tax rate %"),
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    subtotal = models.DecimalField(_("subtotal"), max_digits=16, decimal_places=2)
    discount = models.DecimalField(_("discount"), max_digits=16, decimal_places=2)
    tax = models.DecimalField(_("tax"), max_digits=16, decimal_places=2)
    total = models.DecimalField(_("total"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")]

    def __str__(self) -> str:
        return self.description


class InvoiceSequence(models.Model):
    """The last number given in a store. Incremented with one UPDATE inside the applying
    transaction: concurrent applies queue on the row, and a rollback gives the number back."""

    store = models.OneToOneField("stores.Store", related_name="invoice_sequence", on_delete=models.CASCADE)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.store_id}: {self.last_number}"


class ApiIdempotencyKey(models.Model):
    """A POST made through the API with an ``Idempotency-Key`` header, and the response it got.

    The row is inserted before the work and filled in after it, in the same transaction: a
    concurrent duplicate waits on the unique constraint, then replays the stored response."""

    user = models.ForeignKey(User, verbose_name=_("user"), related_name="+", on_delete=models.CASCADE)
    key = models.CharField(_("key"), max_length=255)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=500)
    request_fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.JSONField(_("response body"), null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("API idempotency key")
        verbose_name_plural = _("API idempotency keys")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="api_idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"
