from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedHttpRequest
from accounts.models import User
from invoices.models import ReportFormat
from invoices.reports import DEFAULT_FORMAT_CODE, ReportRenderError, render_sample_pdf
from stores.forms import StoreForm
from stores.models import Store
from stores.selectors import business_list_for_filter, store_email_history, store_list
from stores.services import store_update

TAB_SLUGS = ("general", "print", "email")
PREVIEW_LANGUAGES = ("es", "en")


@login_required
def store_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The Stores window ("Tiendas"). Cashiers do not manage stores."""
    user = request.user
    if not (user.is_support or user.is_store_admin):
        raise Http404
    business_id = request.GET.get("business")
    selected = int(business_id) if user.is_support and business_id and business_id.isdigit() else None
    context = {
        "stores": store_list(user=user, business_id=selected),
        "businesses": business_list_for_filter(user=user),
        "selected_business": selected,
    }
    return render(request, "stores/store_list.html", context)


@login_required
def store_edit_view(request: AuthenticatedHttpRequest, store_id: int) -> HttpResponse:
    """The store's Edit page: General, Impresión and Enviar Facturas por Email in one form."""
    store = get_object_or_404(Store.objects.editable_by(request.user), pk=store_id)
    saved_name = store.name  # the form may put an unsaved, invalid name on the instance
    if request.method == "POST":
        form = StoreForm(request.POST, request.FILES, instance=store, user=request.user)
        if form.is_valid():
            store_update(store=form.instance, updated_by=request.user, data=form.cleaned_data)
            messages.success(request, _("Store “%(name)s” saved.") % {"name": form.instance.name})
            tab = request.POST.get("active_tab")
            suffix = f"?tab={tab}" if tab in TAB_SLUGS else ""
            return redirect(reverse("stores:edit", args=[store.pk]) + suffix)
    else:
        form = StoreForm(instance=store, user=request.user)

    tabs = form.tabs()
    requested = request.POST.get("active_tab") if request.method == "POST" else request.GET.get("tab")
    with_errors = [tab.slug for tab in tabs if tab.has_errors]
    active_tab = with_errors[0] if with_errors else (requested if requested in TAB_SLUGS else "general")
    context = {
        "store": store,
        "saved_name": saved_name,
        "form": form,
        "tabs": tabs,
        "active_tab": active_tab,
        "history": store_email_history(store=store),
        "preview": _preview_formats(form),
        "preview_languages": PREVIEW_LANGUAGES,
    }
    return render(request, "stores/store_edit.html", context)


def _chosen_format_id(form: StoreForm, name: str) -> str:
    value = form[name].value()
    return str(value) if value is not None and str(value).isdigit() else ""


def _preview_formats(form: StoreForm) -> dict[str, str]:
    """The format each "Preview" link shows before any script runs: the option its select shows,
    or what a blank choice stands for (the default format for the print report, the print report
    for the email report). static/js/report-preview.js does the same as the choice changes."""
    default = ReportFormat.objects.filter(code=DEFAULT_FORMAT_CODE).values_list("pk", flat=True).first()
    default_id = str(default) if default is not None else ""
    print_id = _chosen_format_id(form, "print_report") or default_id
    return {
        "default": default_id,
        "print_report": print_id,
        "email_report": _chosen_format_id(form, "email_report") or print_id,
    }


def _previewable_formats(user: User, store: Store) -> QuerySet[ReportFormat]:
    """Active formats for everybody; a switched-off one for support, and for the store whose
    settings still name it (its invoices are printed with it)."""
    if user.is_support:
        return ReportFormat.objects.all()
    in_use = [pk for pk in (store.print_report_id, store.email_report_id) if pk]
    return ReportFormat.objects.filter(Q(is_active=True) | Q(pk__in=in_use))


@login_required
@require_GET
def store_preview_view(request: AuthenticatedHttpRequest, store_id: int) -> HttpResponse:
    """A made-up invoice of the store rendered with a report format, as a PDF shown in the browser."""
    store = get_object_or_404(Store.objects.editable_by(request.user), pk=store_id)
    format_id = request.GET.get("format", "")
    if not format_id.isdigit():
        raise Http404
    report_format = get_object_or_404(_previewable_formats(request.user, store), pk=int(format_id))
    language = request.GET.get("language", "")
    if language not in PREVIEW_LANGUAGES:
        language = PREVIEW_LANGUAGES[0]
    try:
        pdf = render_sample_pdf(store=store, report_format=report_format, language=language)
    except ReportRenderError as exc:
        context = {"store": store, "report_format": report_format, "reason": str(exc)}
        return render(request, "stores/store_preview_error.html", context, status=422)
    headers = {"Content-Disposition": f'inline; filename="{report_format.code}-{language}.pdf"'}
    return HttpResponse(pdf, content_type="application/pdf", headers=headers)
