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
