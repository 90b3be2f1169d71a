from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Business, User
from finanzapro.email_addresses import normalize_address_list
from invoices.models import Customer, CustomerQuerySet, Invoice, InvoiceLine
from mailer.models import Delivery, DeliveryRecipient


def _request_user(serializer_field: serializers.Field[Any, Any, Any, Any]) -> User | AnonymousUser:
    request = serializer_field.context.get("request")
    user = getattr(request, "user", None)
    return user if isinstance(user, User) else AnonymousUser()


class UserBusinessField(serializers.PrimaryKeyRelatedField[Business]):
    """A business id: any for support, only their own for everybody else."""

    def get_queryset(self) -> QuerySet[Business]:
        user = _request_user(self)
        if isinstance(user, User) and user.is_active and user.is_support:
            return Business.objects.all()
        if isinstance(user, User) and user.is_active and user.business_id is not None:
            return Business.objects.filter(pk=user.business_id)
        return Business.objects.none()


class UserCustomerField(serializers.PrimaryKeyRelatedField[Customer]):
    """A customer id among those the requesting user may see."""

    def get_queryset(self) -> CustomerQuerySet:
        return Customer.objects.for_user(_request_user(self))


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of an error that is not about a field."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="Machine-readable, e.g. `not_draft` or `no_lines`.")


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    business = UserBusinessField(
        queryset=Business.objects.all(),
        required=False,
        help_text="Support staff only: the business of the new customer. Others always add to their own.",
    )
    emails = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,  # a line break, even at the end, must reach validation and be refused
        help_text='Addresses separated by ";" or ","; returned normalized: lower case, no duplicates, "; " between.',
    )

    class Meta:
        model = Customer
        fields = ["id", "business", "name", "legal_id", "emails", "send_invoices_by_email", "language", "is_walk_in"]
        read_only_fields = ["is_walk_in"]
        # The model's constraints are checked by customer_create (full_clean); DRF's copy of the
        # walk-in constraint would make `business` required.
        validators: list[Any] = []

    def validate_emails(self, value: str) -> str:
        try:
            return normalize_address_list(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("business") is None:
            user = _request_user(self)
            business = user.business if isinstance(user, User) else None
            if business is None:
                raise serializers.ValidationError({"business": _("Choose the customer's business.")})
            attrs["business"] = business
        return attrs


class InvoiceLineSerializer(serializers.ModelSerializer[InvoiceLine]):
    class Meta:
        model = InvoiceLine
        fields = [
            "position",
            "description",
            "quantity",
            "unit_price",
            "discount_percent",
            "tax_rate",
            "subtotal",
            "discount",
            "tax",
            "total",
        ]
        read_only_fields = ["position", "subtotal", "discount", "tax", "total"]


class DeliveryRecipientSerializer(serializers.ModelSerializer[DeliveryRecipient]):
    class Meta:
        model = DeliveryRecipient
        fields = ["address", "role", "state", "smtp_code", "smtp_reply", "sent_at"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    """One email of the invoice and what became of it."""

    skip_reason = serializers.ChoiceField(
        choices=Delivery.SkipReason.choices,
        allow_blank=True,
        read_only=True,
        help_text="Why nothing was sent; empty unless the state is `skipped`.",
    )
    to = serializers.ListField(
        child=serializers.EmailField(), source="to_addresses", read_only=True, help_text="The customer's addresses."
    )
    failure_reason = serializers.CharField(
        read_only=True, help_text="Why it failed, in plain words, in the request's language; empty unless failed."
    )
    recipients = DeliveryRecipientSerializer(
        many=True, read_only=True, help_text="Each address (the customer's and the store's copies) and its answer."
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "state",
            "skip_reason",
            "to",
            "created_at",
            "sent_at",
            "failed_at",
            "failure_reason",
            "attempt_count",
            "recipients",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer[Invoice]):
    """An invoice as the API shows it; amounts are decimal strings in the invoice's currency."""

    lines = InvoiceLineSerializer(many=True, read_only=True)
    deliveries = DeliverySerializer(
        many=True, read_only=True, source="email_deliveries", help_text="The invoice's emails, newest first."
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "store",
            "customer",
            "currency",
            "number",
            "status",
            "notes",
            "subtotal",
            "discount_total",
            "tax_total",
            "total",
            "lines",
            "created_by",
            "created_at",
            "applied_by",
            "applied_at",
            "deliveries",
        ]
        read_only_fields = fields


class InvoiceResendSerializer(serializers.Serializer[Any]):
    """Where to send the invoice again."""

    to = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        trim_whitespace=False,  # a line break must reach validation and be refused
        help_text=(
            'Addresses separated by ";" or ","; omitted, null or blank: the customer\'s addresses. '
            "Required for the walk-in customer, who has none."
        ),
    )


class InvoiceCreateSerializer(serializers.Serializer[Any]):
    """A new draft invoice; amounts are computed by the server."""

    store = serializers.IntegerField(min_value=1, help_text="The id of a store you may invoice in.")
    customer = UserCustomerField(
        queryset=Customer.objects.all(),
        required=False,
        allow_null=True,
        error_messages={"does_not_exist": _("Choose a customer of this business.")},
        help_text="A customer of the store's business; omitted or null: the walk-in (cash) customer.",
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    lines = InvoiceLineSerializer(many=True, help_text="May be empty for a draft; applying needs at least one.")


class InvoiceFilterSerializer(serializers.Serializer[Any]):
    """The query parameters of the invoice list."""

    store = serializers.IntegerField(required=False, min_value=1, help_text="Only this store's invoices.")
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Only this customer's invoices.")
    status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False)
    number = serializers.IntegerField(required=False, min_value=1, help_text="The number an invoice was applied with.")
