from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from finanzapro.queries import CompiledRead

if TYPE_CHECKING:
    from stores.models import Store


class Business(models.Model):
    """The tenant: owns stores, users and customers. Nobody sees another business's data."""

    name = models.CharField(_("name"), max_length=200)
    legal_id = models.CharField(_("legal id"), max_length=30, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("business")
        verbose_name_plural = _("businesses")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who signs in.

    Store admins and cashiers belong to exactly one business; support staff (``is_staff``)
    belong to none and see every business.
    """

    class Role(models.TextChoices):
        STORE_ADMIN = "store_admin", _("Store admin")
        CASHIER = "cashier", _("Cashier")

    business = models.ForeignKey(
        Business,
        verbose_name=_("business"),
        related_name="users",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, blank=True)
    stores = models.ManyToManyField(
        "stores.Store",
        verbose_name=_("assigned stores"),
        related_name="cashiers",
        blank=True,
        help_text=_("Stores where a cashier may create and apply invoices."),
    )
    language = models.CharField(
        _("language"), max_length=8, choices=[("es", _("Spanish")), ("en", _("English"))], default="es"
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(is_staff=True) | models.Q(is_superuser=True))
                | (models.Q(business__isnull=False) & ~models.Q(role="")),
                name="user_has_business_and_role_unless_support",
            ),
        ]

    @property
    def is_support(self) -> bool:
        return self.is_staff

    @property
    def is_store_admin(self) -> bool:
        return self.role == self.Role.STORE_ADMIN and self.business_id is not None

    @property
    def is_cashier(self) -> bool:
        return self.role == self.Role.CASHIER and self.business_id is not None

    def can_work_in(self, store: Store) -> bool:
        """Whether this user may create and apply invoices in ``store``."""
        if self.is_support:
            return True
        if store.business_id != self.business_id:
            return False
        return self.is_store_admin or bool(_assignment(self.pk, store.pk))


# A cashier's assignment to a store, read for each invoice a cashier creates, edits or applies.
# Compiled once per connection: the ORM's ``user.stores.filter(pk=…).exists()`` took 0.65-0.82 ms
# of CPU each time, this read 0.08-0.11 ms (500 reads a round, three rounds each way).
_assignment = CompiledRead(
    lambda user_id, store_id: User.stores.through.objects.filter(user_id=user_id, store_id=store_id)
)
