from collections.abc import Mapping

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import User
from invoices.forms import (
    LINES_PREFIX,
    BaseLineFormSet,
    CustomerForm,
    InvoiceFilterForm,
    InvoiceForm,
    LineForm,
    LineFormSet,
    VoidForm,
    with_blank_line,
)
from invoices.models import Customer, Invoice, ReportFormat
from invoices.reports import ReportRenderError, render_invoice_pdf, report_format_for_print
from invoices.selectors import customer_list, invoice_customer_choices, invoice_list, invoicing_store_list
from invoices.services import (
    customer_create,
    customer_update,
    invoice_apply,
    invoice_create,
    invoice_update,
    invoice_void,
    walk_in_customer_get,
)
from stores.models import Store


def _manages_customers(user: User) -> bool:
    """Store admins and cashiers keep their business's customers; support uses the admin."""
    return user.business is not None and (user.is_store_admin or user.is_cashier)


@login_required
@require_GET
def customer_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    context = {
        "customers": customer_list(user=request.user, search=search)[:200],
        "search": search,
        "can_create": _manages_customers(request.user),
    }
    return render(request, "invoices/customer_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def customer_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    business = request.user.business
    if business is None or not _manages_customers(request.user):
        raise Http404
    form = CustomerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        customer = customer_create(business=business, created_by=request.user, **form.cleaned_data)
        messages.success(request, _("Customer “%(name)s” saved.") % {"name": customer.name})
        return redirect("invoices:customer_list")
    return render(request, "invoices/customer_form.html", {"form": form, "customer": None})


@login_required
@require_http_methods(["GET", "POST"])
def customer_edit_view(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    if not _manages_customers(request.user):
        raise Http404
    customer = get_object_or_404(Customer.objects.for_user(request.user), pk=customer_id)
    form = CustomerForm(request.POST or None, instance=customer)
    if request.method == "POST" and form.is_valid():
        customer = customer_update(
            customer=Customer.objects.get(pk=customer.pk), updated_by=request.user, **form.cleaned_data
        )
        messages.success(request, _("Customer “%(name)s” saved.") % {"name": customer.name})
        return redirect("invoices:customer_list")
    return render(request, "invoices/customer_form.html", {"form": form, "customer": customer})


# --- Invoices ------------------------------------------------------------------------------

INVOICES_PER_PAGE = 50


def _store_or_404(user: User, store_id: str | None) -> Store:
    """The store named in the request among those ``user`` works in; the first of them if none is named."""
    stores = invoicing_store_list(user=user)
    if store_id is None or store_id == "":
        store = stores.first()
        if store is None:
            raise Http404
        return store
    if not store_id.isdigit():
        raise Http404
    return get_object_or_404(stores, pk=int(store_id))


def _invoice_or_404(user: User, invoice_id: int) -> Invoice:
    invoices = Invoice.objects.for_user(user).select_related(
        "store", "store__business", "customer", "created_by", "applied_by", "voided_by"
    )
    return get_object_or_404(invoices, pk=invoice_id)


def _add_service_error(form: forms.Form, exc: ValidationError, fields: Mapping[str, str] | None = None) -> None:
    """Shows a service's ValidationError on ``form``: next to the field it names (renamed by
    ``fields``) when the form has it, in the form's error box otherwise."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        field = (fields or {}).get(name, name)
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_GET
def invoice_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A store's invoices, newest first, with the list's filters."""
    stores = invoicing_store_list(user=request.user)
    if not stores.exists():
        return render(request, "invoices/invoice_list.html", {"stores": stores, "store": None})
    store = _store_or_404(request.user, request.GET.get("store"))
    filter_form = InvoiceFilterForm(request.GET)
    invoices = invoice_list(user=request.user, store=store, **filter_form.filters())
    page = Paginator(invoices, INVOICES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"stores": stores, "store": store, "filter_form": filter_form, "page": page}
    return render(request, "invoices/invoice_list.html", context)


def _render_invoice_form(
    request: AuthenticatedHttpRequest,
    *,
    store: Store,
    form: InvoiceForm,
    formset: BaseLineFormSet,
    invoice: Invoice | None = None,
) -> HttpResponse:
    currency = invoice.currency if invoice else store.currency
    context = {
        "store": store,
        "invoice": invoice,
        "form": form,
        "formset": formset,
        "currency": currency,
        "preview": formset.preview(currency),
    }
    return render(request, "invoices/invoice_form.html", context)


def _save_invoice(
    request: AuthenticatedHttpRequest,
    *,
    store: Store,
    form: InvoiceForm,
    formset: BaseLineFormSet,
    invoice: Invoice | None,
    apply: bool,
) -> Invoice:
    """Creates or updates the draft and, for "Apply", applies it: all of it or, on an error, none."""
    data = form.cleaned_data
    with transaction.atomic():
        if form.creates_customer:
            customer = customer_create(
                business=store.business,
                created_by=request.user,
                name=data["new_customer_name"],
                legal_id=data["new_customer_legal_id"],
                emails=data["new_customer_emails"],
                send_invoices_by_email=data["new_customer_send_by_email"],
            )
        else:
            customer = data["customer"]
        lines = formset.line_data()
        if invoice is None:
            invoice = invoice_create(
                store=store, customer=customer, created_by=request.user, lines=lines, notes=data["notes"]
            )
        else:
            invoice = invoice_update(
                invoice=invoice, updated_by=request.user, customer=customer, lines=lines, notes=data["notes"]
            )
        if apply:
            invoice = invoice_apply(invoice=invoice, applied_by=request.user)
    return invoice


def _invoice_form_view(request: AuthenticatedHttpRequest, *, store: Store, invoice: Invoice | None) -> HttpResponse:
    """The form of a new invoice or of a draft: "Save draft", "Apply", and "Add line" without JavaScript."""
    customers = invoice_customer_choices(user=request.user, store=store)
    if request.method != "POST":
        if invoice is None:
            initial: dict[str, object] = {"customer": walk_in_customer_get(business=store.business).pk}
            lines: list[dict[str, object]] = []
        else:
            initial = {"customer": invoice.customer_id, "notes": invoice.notes}
            lines = [LineForm.initial_for(line) for line in invoice.lines.all()]
        form = InvoiceForm(initial=initial, customers=customers)
        formset = LineFormSet(initial=lines, prefix=LINES_PREFIX)
        return _render_invoice_form(request, store=store, form=form, formset=formset, invoice=invoice)

    action = request.POST.get("action", "save")
    if action not in ("save", "apply"):  # "Add line" or "Update totals": the same page again
        data = with_blank_line(request.POST) if action == "add_line" else request.POST
        form = InvoiceForm(data, customers=customers)
        formset = LineFormSet(data, prefix=LINES_PREFIX)
        return _render_invoice_form(request, store=store, form=form, formset=formset, invoice=invoice)

    form = InvoiceForm(request.POST, customers=customers)
    formset = LineFormSet(request.POST, prefix=LINES_PREFIX)
    form_ok = form.is_valid()
    lines_ok = formset.is_valid()  # validated even when the form is not, so every error shows at once
    if form_ok and lines_ok:
        try:
            saved = _save_invoice(
                request, store=store, form=form, formset=formset, invoice=invoice, apply=action == "apply"
            )
        except PermissionDenied:
            raise Http404 from None
        except ValidationError as exc:
            _add_service_error(form, exc, InvoiceForm.NEW_CUSTOMER_FIELDS)
        else:
            if saved.number is not None:
                messages.success(request, _("Invoice %(number)s applied.") % {"number": saved.number})
            else:
                messages.success(request, _("Draft saved."))
            return redirect("invoices:detail", invoice_id=saved.pk)
    return _render_invoice_form(request, store=store, form=form, formset=formset, invoice=invoice)


@login_required
@require_http_methods(["GET", "POST"])
def invoice_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    store = _store_or_404(request.user, request.GET.get("store"))
    return _invoice_form_view(request, store=store, invoice=None)


@login_required
@require_http_methods(["GET", "POST"])
def invoice_edit_view(request: AuthenticatedHttpRequest, invoice_id: int) -> HttpResponse:
    """A draft's form; an applied or voided invoice is frozen and a POST changes nothing."""
    invoice = _invoice_or_404(request.user, invoice_id)
    if not invoice.is_draft:
        status = 409 if request.method == "POST" else 200
        return render(request, "invoices/invoice_frozen.html", {"invoice": invoice}, status=status)
    return _invoice_form_view(request, store=invoice.store, invoice=invoice)


@login_required
@require_POST
def invoice_totals_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The totals panel of the invoice form, recomputed from the lines as typed (htmx)."""
    invoice_id = request.POST.get("invoice", "")
    if invoice_id.isdigit():
        currency = _invoice_or_404(request.user, int(invoice_id)).currency
    else:
        store_id = request.POST.get("store", "")
        if not store_id.isdigit():
            raise Http404
        currency = get_object_or_404(invoicing_store_list(user=request.user), pk=int(store_id)).currency
    formset = LineFormSet(request.POST, prefix=LINES_PREFIX)
    context = {"preview": formset.preview(currency), "currency": currency}
    return render(request, "invoices/invoice_form.html#totals", context)


def _render_invoice_detail(
    request: AuthenticatedHttpRequest, invoice: Invoice, *, void_form: VoidForm | None = None, status: int = 200
) -> HttpResponse:
    user = request.user
    context = {
        "invoice": invoice,
        "lines": invoice.lines.all(),
        "can_void": invoice.status == Invoice.Status.APPLIED
        and (user.is_support or (user.is_store_admin and user.business_id == invoice.store.business_id)),
        "void_form": void_form or VoidForm(),
    }
    return render(request, "invoices/invoice_detail.html", context, status=status)


@login_required
@require_GET
def invoice_detail_view(request: AuthenticatedHttpRequest, invoice_id: int) -> HttpResponse:
    return _render_invoice_detail(request, _invoice_or_404(request.user, invoice_id))


@login_required
@require_POST
def invoice_apply_view(request: AuthenticatedHttpRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice_or_404(request.user, invoice_id)
    try:
        invoice = invoice_apply(invoice=invoice, applied_by=request.user)
    except PermissionDenied:
        raise Http404 from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Invoice %(number)s applied.") % {"number": invoice.number})
    return redirect("invoices:detail", invoice_id=invoice.pk)


@login_required
@require_POST
def invoice_void_view(request: AuthenticatedHttpRequest, invoice_id: int) -> HttpResponse:
    """Voids an applied invoice (store admins and support); the reason is required."""
    invoice = _invoice_or_404(request.user, invoice_id)
    form = VoidForm(request.POST)
    if form.is_valid():
        try:
            # PermissionDenied (a cashier) is left to Django's 403: the invoice is theirs to see.
            invoice = invoice_void(invoice=invoice, voided_by=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            _add_service_error(form, exc)
        else:
            messages.success(request, _("Invoice %(number)s voided.") % {"number": invoice.number})
            return redirect("invoices:detail", invoice_id=invoice.pk)
    return _render_invoice_detail(request, invoice, void_form=form, status=400)


@login_required
@require_GET
@never_cache  # a draft's PDF changes with every edit
def invoice_pdf_view(request: AuthenticatedHttpRequest, invoice_id: int) -> HttpResponse:
    """The invoice rendered with its store's print report: shown in the browser (to read or
    print), or saved as a file with ``?download=1``."""
    invoice = _invoice_or_404(request.user, invoice_id)
    report_format: ReportFormat | None = None
    try:
        report_format = report_format_for_print(invoice.store)
        pdf = render_invoice_pdf(invoice=invoice, report_format=report_format)
    except ReportRenderError as exc:
        # A format that cannot render is a known, fixable problem of the store's settings,
        # not a crash: say which format and why, so that support can be told.
        context = {"invoice": invoice, "report_format": report_format, "reason": str(exc)}
        return render(request, "invoices/invoice_pdf_error.html", context, status=422)
    # A number or an id: nothing in the file name needs quoting.
    filename = f"Factura-{invoice.number}.pdf" if invoice.number is not None else f"Borrador-{invoice.pk}.pdf"
    disposition = "attachment" if request.GET.get("download") == "1" else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{filename}"'}
    return HttpResponse(pdf, content_type="application/pdf", headers=headers)
