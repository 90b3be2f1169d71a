from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.http import AuthenticatedHttpRequest
from stores.forms import StoreForm
from stores.models import Store
from stores.selectors import business_list_for_filter, store_email_history, store_list
from stores.services import store_update

TAB_SLUGS = ("general", "print", "email")


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
    }
    return render(request, "stores/store_edit.html", context)
