from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.fields import get_error_detail
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from invoices.api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from invoices.api.serializers import (
    CustomerSerializer,
    DeliverySerializer,
    ErrorSerializer,
    InvoiceCreateSerializer,
    InvoiceFilterSerializer,
    InvoiceResendSerializer,
    InvoiceSerializer,
)
from invoices.models import Customer, CustomerQuerySet, Invoice, InvoiceQuerySet
from invoices.selectors import customer_list
from invoices.services import LineData, customer_create, invoice_apply, invoice_create, walk_in_customer_get
from mailer.services import can_resend, delivery_resend
from mailer.views import resend_limit_message, resend_rate_limited
from stores.models import Store

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Not found, or not yours to see.")
VALIDATION_ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Invalid data: each field named, with a list of messages."
)
KEY_REUSED = OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used for a different request.")


def _acting_user(request: Request) -> User:
    if not isinstance(request.user, User):
        raise NotAuthenticated()
    return request.user


@contextmanager
def _service_errors_as_400() -> Iterator[None]:
    """A service's ValidationError becomes a 400 naming the fields, like a serializer's."""
    try:
        yield
    except DjangoValidationError as exc:
        detail = get_error_detail(exc)
        if isinstance(detail, dict) and "__all__" in detail:
            detail["non_field_errors"] = detail.pop("__all__")
        raise serializers.ValidationError(detail) from exc


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        description="The customers of your business (every business's for support), by name.",
        parameters=[OpenApiParameter("search", OpenApiTypes.STR, description="Part of the name or the legal id.")],
    ),
)
class CustomerViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Customer]):
    serializer_class = CustomerSerializer

    def get_queryset(self) -> CustomerQuerySet:
        return customer_list(user=self.request.user, search=self.request.query_params.get("search", "").strip())

    @extend_schema(
        summary="Create a customer",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: CustomerSerializer, 400: VALIDATION_ERROR, 422: KEY_REUSED},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        user = _acting_user(request)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with _service_errors_as_400():
            customer = customer_create(created_by=user, **serializer.validated_data)
        return Response(self.get_serializer(customer).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="List invoices",
        description="The invoices of the stores you work in, newest first.",
        parameters=[InvoiceFilterSerializer],
    ),
    retrieve=extend_schema(summary="Show an invoice", responses={200: InvoiceSerializer, 404: NOT_FOUND}),
)
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Invoice]):
    """Invoices are created as drafts and applied; the API never changes or deletes one."""

    serializer_class = InvoiceSerializer
    lookup_value_converter = "int"

    def get_queryset(self) -> InvoiceQuerySet:
        invoices = (
            Invoice.objects.for_user(self.request.user)
            .select_related("store", "customer")
            .prefetch_related("lines", "email_deliveries__recipients")
        )
        if self.action != "list":
            return invoices
        filters = InvoiceFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = {name: value for name, value in filters.validated_data.items() if value is not None}
        if "store" in wanted:
            invoices = invoices.filter(store_id=wanted["store"])
        if "customer" in wanted:
            invoices = invoices.filter(customer_id=wanted["customer"])
        if "status" in wanted:
            invoices = invoices.filter(status=wanted["status"])
        if "number" in wanted:
            invoices = invoices.filter(number=wanted["number"])
        return invoices

    @extend_schema(
        summary="Create a draft invoice",
        description=(
            "Amounts are computed by the server. A store you cannot invoice in is a 404; a customer of "
            "another business is a 400 naming `customer`."
        ),
        request=InvoiceCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: InvoiceSerializer, 400: VALIDATION_ERROR, 404: NOT_FOUND, 422: KEY_REUSED},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        user = _acting_user(request)
        serializer = InvoiceCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        # Another business's store, or one a cashier is not assigned to: not found, as on the pages.
        store = get_object_or_404(Store.objects.for_user(user), pk=data["store"])
        customer = data.get("customer") or walk_in_customer_get(business=store.business)
        with _service_errors_as_400():
            invoice = invoice_create(
                store=store,
                customer=customer,
                created_by=user,
                notes=data["notes"],
                lines=[LineData(**line) for line in data["lines"]],
            )
        return Response(self.get_serializer(invoice).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Apply an invoice",
        description="Numbers the draft and freezes it. Applying an applied invoice is a 409 naming its number.",
        request=None,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            200: InvoiceSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The draft cannot be applied (e.g. it has no lines)."),
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The invoice was already applied."),
            422: KEY_REUSED,
        },
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def apply(self, request: Request, pk: str | None = None) -> Response:
        user = _acting_user(request)
        invoice = self.get_object()
        try:
            invoice = invoice_apply(invoice=invoice, applied_by=user)
        except DjangoValidationError as exc:
            code = exc.code or "invalid"
            body = {"detail": " ".join(exc.messages), "code": code}
            return Response(
                body, status=status.HTTP_409_CONFLICT if code == "not_draft" else status.HTTP_400_BAD_REQUEST
            )
        return Response(self.get_serializer(invoice).data)

    @extend_schema(
        summary="Email an invoice again",
        description=(
            "Creates a new email of an applied invoice, to `to` or else to the customer's addresses, and "
            "queues it; follow it in the invoice's `deliveries`. A resend is an explicit request: it goes out "
            "even when the store's sending is off or the customer did not ask for invoices by email. Allowed "
            "to support, the store admins of the invoice's business and the cashier who applied it (403 for "
            "others who can see the invoice); at most 20 resends per user and hour (429)."
        ),
        request=InvoiceResendSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={
            201: DeliverySerializer,
            400: VALIDATION_ERROR,
            403: OpenApiResponse(ErrorSerializer, description="You may see the invoice but not email it."),
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The invoice is not applied (a draft, or voided)."),
            422: KEY_REUSED,
            429: OpenApiResponse(ErrorSerializer, description="Too many resends in the last hour."),
        },
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def resend(self, request: Request, pk: str | None = None) -> Response:
        user = _acting_user(request)
        invoice = self.get_object()
        if invoice.status != Invoice.Status.APPLIED:
            body = {"detail": _("Only an applied invoice can be emailed."), "code": "not_applied"}
            return Response(body, status=status.HTTP_409_CONFLICT)
        if not can_resend(user, invoice):
            raise PermissionDenied(_("You cannot email this invoice again."))
        serializer = InvoiceResendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # DRF's request wraps Django's, on which DRF set the user it authenticated.
        if resend_rate_limited(request._request):
            return Response(
                {"detail": resend_limit_message(), "code": "rate_limited"}, status=status.HTTP_429_TOO_MANY_REQUESTS
            )
        with _service_errors_as_400():
            delivery = delivery_resend(invoice=invoice, requested_by=user, to=serializer.validated_data["to"])
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)
