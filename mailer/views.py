from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails
from django_ratelimit import ALL
from django_ratelimit.core import is_ratelimited
from django_ratelimit.decorators import ratelimit

from accounts.http import AuthenticatedHttpRequest
from invoices.models import Invoice
from mailer.forms import DeliveryFilterForm, ResendForm
from mailer.models import Delivery, DeliveryQuerySet
from mailer.selectors import (
    InvoiceEmailPanel,
    StateCount,
    delivery_businesses,
    delivery_list,
    delivery_state_counts,
    delivery_stores,
    invoice_email_panel,
    store_test_email_status,
    total_count,
)
from mailer.services import can_resend, delivery_resend, store_test_email_send
from stores.models import Store

TEST_EMAILS_PER_HOUR = 5
# Each resend is a real email to a customer: enough for a busy counter, not for a flood.
RESENDS_PER_HOUR = 20
DELIVERIES_PER_PAGE = 50
MAX_UNCOUNTED_PAGE = 100_000  # past the count limit, page numbers beyond this are not asked of the database


class _TestEmailRequest(AuthenticatedHttpRequest):
    htmx: HtmxDetails  # set by django-htmx's middleware
    limited: bool  # set by django-ratelimit's decorator


class _HtmxRequest(AuthenticatedHttpRequest):
    htmx: HtmxDetails  # set by django-htmx's middleware


_View = Callable[[_TestEmailRequest, int], HttpResponse]

# Each test email is a real SMTP conversation: a few per person and hour are plenty, and the
# limit keeps the button from being used to flood a mailbox or our mail server.
_limit_test_emails: Callable[[_View], _View] = ratelimit(
    key="user", rate=f"{TEST_EMAILS_PER_HOUR}/h", method="POST", block=False
)


@login_required
@require_POST
@_limit_test_emails
def store_test_email_view(request: _TestEmailRequest, store_id: int) -> HttpResponse:
    """The "Send test email" button of a store's email settings tab: queues the test email and
    shows its status, which follows it until the mail server has answered."""
    store = get_object_or_404(Store.objects.editable_by(request.user), pk=store_id)
    if request.limited:
        message = ngettext(
            "You can send %(count)d test email per hour and have reached that limit; nothing was sent. "
            "Try again later.",
            "You can send %(count)d test emails per hour and have reached that limit; nothing was sent. "
            "Try again later.",
            TEST_EMAILS_PER_HOUR,
        ) % {"count": TEST_EMAILS_PER_HOUR}
        return _test_email_refused(request, store, message)
    try:
        delivery = store_test_email_send(store=store, user=request.user)
    except ValidationError as error:
        return _test_email_refused(request, store, " ".join(error.messages))
    if request.htmx:
        status = store_test_email_status(user=request.user, delivery_id=delivery.pk)
        return render(request, "mailer/test_email_result.html", {"status": status})
    return redirect("mailer:test_email", delivery.pk)


def _test_email_refused(request: _TestEmailRequest, store: Store, message: str) -> HttpResponse:
    if request.htmx:
        return render(request, "mailer/test_email_result.html", {"ok": False, "message": message})
    messages.error(request, message)
    return redirect(reverse("stores:edit", args=[store.pk]) + "?tab=email")


@login_required
@require_GET
def test_email_view(request: _HtmxRequest, delivery_id: int) -> HttpResponse:
    """A test email's status: the box the store's page polls with htmx, or a page of its own
    (which reloads itself while the email is on its way) without JavaScript."""
    status = store_test_email_status(user=request.user, delivery_id=delivery_id)
    if status is None:
        raise Http404
    template = "mailer/test_email_result.html" if request.htmx else "mailer/test_email.html"
    return render(request, template, {"status": status})


# --- The invoice's email panel ----------------------------------------------------------------


def resend_rate_limited(request: HttpRequest) -> bool:
    """Count one resend by the request's user and say whether it is over RESENDS_PER_HOUR.
    The invoice page and the POS API share the count."""
    return bool(
        is_ratelimited(
            request, group="mailer.resend", key="user", rate=f"{RESENDS_PER_HOUR}/h", method=ALL, increment=True
        )
    )


def resend_limit_message() -> str:
    return ngettext(
        "You can resend %(count)d invoice email per hour and have reached that limit; nothing was sent. "
        "Try again later.",
        "You can resend %(count)d invoice emails per hour and have reached that limit; nothing was sent. "
        "Try again later.",
        RESENDS_PER_HOUR,
    ) % {"count": RESENDS_PER_HOUR}


def panel_context(panel: InvoiceEmailPanel, *, ok: bool = True, message: str = "") -> dict[str, Any]:
    return {
        "invoice": panel.invoice,
        "deliveries": panel.deliveries,
        "in_flight": panel.in_flight,
        "can_resend": panel.can_resend,
        "resend_form": ResendForm(),
        "ok": ok,
        "message": message,
    }


def _panel_or_404(request: AuthenticatedHttpRequest, invoice_id: int) -> InvoiceEmailPanel:
    panel = invoice_email_panel(user=request.user, invoice_id=invoice_id)
    if panel is None:
        raise Http404
    return panel


@login_required
@require_GET
def invoice_email_panel_view(request: _HtmxRequest, invoice_id: int) -> HttpResponse:
    """The invoice's email panel: the piece the invoice page polls (htmx) while an email is
    on its way, or a page of its own."""
    context = panel_context(_panel_or_404(request, invoice_id))
    if request.htmx:
        return render(request, "mailer/invoice_email.html#deliveries", context)
    return render(request, "mailer/invoice_email.html", context)


@login_required
@require_POST
def invoice_resend_view(request: _HtmxRequest, invoice_id: int) -> HttpResponse:
    """The panel's "Resend email" button: a new delivery, to the customer or to the addresses typed."""
    invoice = get_object_or_404(Invoice.objects.for_user(request.user).select_related("store"), pk=invoice_id)
    if not can_resend(request.user, invoice):
        # The invoice is theirs to see (as with voiding), not theirs to send.
        raise PermissionDenied
    form = ResendForm(request.POST)
    ok = False
    if not form.is_valid():
        message = " ".join(str(error) for errors in form.errors.values() for error in errors)
    elif resend_rate_limited(request):
        message = resend_limit_message()
    else:
        try:
            delivery = delivery_resend(invoice=invoice, requested_by=request.user, to=form.cleaned_data["to"] or None)
        except ValidationError as exc:
            message = " ".join(exc.messages)
        else:
            ok = True
            message = _("The invoice will be emailed again to %(addresses)s.") % {
                "addresses": ", ".join(delivery.to_addresses)
            }

    if request.htmx:
        context = panel_context(_panel_or_404(request, invoice_id), ok=ok, message=message)
        return render(request, "mailer/invoice_email.html#deliveries", context)
    if ok:
        messages.success(request, message)
    else:
        messages.error(request, message)
    return redirect(reverse("invoices:detail", args=[invoice.pk]) + "#email-status")


# --- The Correos pages ------------------------------------------------------------------------


def _delivery_list_page(request: AuthenticatedHttpRequest, *, store: Store | None) -> HttpResponse:
    """A store's emails (``store``) or every email the user may look at, filtered and counted."""
    user = request.user
    form = DeliveryFilterForm(
        request.GET,
        stores=delivery_stores(user=user) if store is None else None,
        businesses=delivery_businesses(user=user) if store is None and user.is_support else None,
    )
    filters = form.filters()
    if store is not None:
        filters["store"] = store
    state = filters.pop("state")
    deliveries = delivery_list(user=user, **filters)
    # Counted without the state filter: each count says what choosing that state would show.
    counts = delivery_state_counts(deliveries)
    total = total_count(counts)
    if state:
        deliveries = deliveries.filter(state=state)
    listed = counts[state] if state else total
    context = {
        "store": store,
        "form": form,
        "page": _delivery_page(deliveries, listed, request.GET.get("page")),
        "pages_counted": not listed.more,
        "state": state,
        "counts": [(value, label, counts[value]) for value, label in Delivery.State.choices],
        "total": total,
    }
    return render(request, "mailer/delivery_list.html", context)


def _delivery_page(deliveries: DeliveryQuerySet, listed: StateCount, number: str | None) -> Page[Delivery]:
    """The page ``number`` of ``deliveries``, of which there are ``listed``. When the count stopped
    at its limit the pages are not counted either: a page offers "next" while a row follows it."""
    paginator = Paginator(deliveries, DELIVERIES_PER_PAGE)
    if not listed.more:
        # The counts already say how many emails the page lists: no second count of the same rows.
        paginator.count = listed.number
        return paginator.get_page(number)
    try:
        wanted = int(number or 1)
    except ValueError:
        wanted = 1
    if not 1 <= wanted <= MAX_UNCOUNTED_PAGE:  # a made-up number: the first page, not a database error
        wanted = 1
    start = (wanted - 1) * DELIVERIES_PER_PAGE
    rows = list(deliveries[start : start + DELIVERIES_PER_PAGE + 1])
    if not rows and wanted > 1:  # past the end (rows deleted, or a made-up number): the first page
        wanted, start = 1, 0
        rows = list(deliveries[: DELIVERIES_PER_PAGE + 1])
    # As many as are known to exist: this page's rows and, when one follows, one more page.
    paginator.count = start + len(rows)
    return Page(rows[:DELIVERIES_PER_PAGE], wanted, paginator)


@login_required
@require_GET
def delivery_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Correos: the emails of every store of the user's business (of every business for support).
    Cashiers do not get it: their invoices' panels show their emails."""
    if not (request.user.is_support or request.user.is_store_admin):
        raise Http404
    return _delivery_list_page(request, store=None)


@login_required
@require_GET
def store_delivery_list_view(request: AuthenticatedHttpRequest, store_id: int) -> HttpResponse:
    """A store's Correos page, for those who manage the store."""
    store = get_object_or_404(delivery_stores(user=request.user), pk=store_id)
    return _delivery_list_page(request, store=store)
