from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User
from finanzapro.email_addresses import EmailListField, validate_single_address
from invoices.models import ReportFormat


class StoreQuerySet(models.QuerySet["Store"]):
    def for_user(self, user: User | AnonymousUser) -> "StoreQuerySet":
        """The stores ``user`` may see: all for support, the business's for a store admin,
        the assigned ones for a cashier, none for anybody else."""
        if not isinstance(user, User) or not user.is_active:
            return self.none()
        if user.is_support:
            return self.all()
        if user.business_id is None:
            return self.none()
        if user.is_store_admin:
            return self.filter(business_id=user.business_id)
        if user.is_cashier:
            return self.filter(business_id=user.business_id, cashiers=user)
        return self.none()

    def editable_by(self, user: User | AnonymousUser) -> "StoreQuerySet":
        """The stores whose settings ``user`` may change: support's and store admins' only."""
        if isinstance(user, User) and (user.is_support or user.is_store_admin):
            return self.for_user(user)
        return self.none()


class Store(models.Model):
    class Currency(models.TextChoices):
        CRC = "CRC", _("Costa Rican colón (₡)")
        USD = "USD", _("US dollar ($)")

    business = models.ForeignKey(Business, verbose_name=_("business"), related_name="stores", on_delete=models.PROTECT)
    name = models.CharField(_("name"), max_length=200)
    legal_id = models.CharField(_("legal id"), max_length=30)
    address = models.TextField(_("address"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    email = models.EmailField(_("email"), blank=True)
    logo = models.ImageField(_("logo"), upload_to="store-logos/", blank=True)
    currency = models.CharField(_("currency"), max_length=3, choices=Currency.choices, default=Currency.CRC)

    print_report = models.ForeignKey(
        ReportFormat,
        verbose_name=_("print report"),
        related_name="+",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text=_("The format used to print this store's invoices."),
    )

    # The "Enviar Facturas por Email" tab.
    email_enabled = models.BooleanField(_("Enable sending invoices by email"), default=False)
    reply_to = models.EmailField(
        _("Reply-to address"),
        blank=True,
        validators=[validate_single_address],
        help_text=_("If a customer answers an invoice email, the answer goes here."),
    )
    copy_to = EmailListField(
        _("Send copies to"),
        help_text=_("Receive a copy of every invoice sent. Separate several addresses with semicolons."),
    )
    notify_applying_user = models.BooleanField(
        _("Notify the user who applied the invoice"),
        default=True,
        help_text=_("When the customer's email cannot be delivered."),
    )
    failure_contacts = EmailListField(
        _("Also notify these addresses"),
        help_text=_("Other addresses told when an invoice email cannot be delivered."),
    )
    email_report = models.ForeignKey(
        ReportFormat,
        verbose_name=_("Report sent by email"),
        related_name="+",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text=_("Overrides the print report when emailing. Blank: the print report is sent."),
    )

    objects = StoreQuerySet.as_manager()

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["business__name", "name"]
        constraints = [models.UniqueConstraint(fields=["business", "name"], name="store_name_unique_per_business")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.email_enabled and not self.reply_to:
            raise ValidationError(
                {"reply_to": _("Enter the address that receives customer replies when sending is on.")}
            )


class StoreEmailSettingsChange(models.Model):
    """One field of a store's email settings changed: who, from what, to what, when."""

    store = models.ForeignKey(Store, related_name="email_settings_changes", on_delete=models.CASCADE)
    changed_by = models.ForeignKey(
        User, verbose_name=_("changed by"), related_name="+", on_delete=models.SET_NULL, null=True
    )
    field = models.CharField(_("field"), max_length=50)
    old_value = models.TextField(_("before"), blank=True)
    new_value = models.TextField(_("after"), blank=True)
    changed_at = models.DateTimeField(_("changed at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("email settings change")
        verbose_name_plural = _("email settings changes")
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.store} · {self.field}"

    def _display(self, value: str) -> str:
        if self.field in {"email_enabled", "notify_applying_user"}:
            return str(_("On") if value == "on" else _("Off"))
        if self.field == "email_report":
            chosen = ReportFormat.objects.filter(code=value).first() if value else None
            return str(chosen) if chosen else str(_("Same as the print report"))
        return value or "—"

    @property
    def old_display(self) -> str:
        return self._display(self.old_value)

    @property
    def new_display(self) -> str:
        return self._display(self.new_value)

    @property
    def field_label(self) -> str:
        field = Store._meta.get_field(self.field)
        return str(getattr(field, "verbose_name", self.field))
