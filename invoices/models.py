from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User


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
    emails = models.TextField(_("email addresses"), blank=True)
    send_invoices_by_email = models.BooleanField(_("send invoices by email"), default=False)
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
