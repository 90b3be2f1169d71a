from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Business, User


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

    objects = StoreQuerySet.as_manager()

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["business__name", "name"]
        constraints = [models.UniqueConstraint(fields=["business", "name"], name="store_name_unique_per_business")]

    def __str__(self) -> str:
        return self.name
