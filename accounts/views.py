from collections.abc import Callable
from functools import wraps
from typing import Concatenate

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import services
from accounts.forms import UserCreateForm, UserEditForm
from accounts.http import AuthenticatedHttpRequest
from accounts.models import Business, User
from accounts.selectors import managed_user_list
from invoices.models import Customer
from stores.models import Store


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    stores = Store.objects.for_user(request.user).select_related("business")
    context = {
        "stores": stores,
        "customer_count": Customer.objects.for_user(request.user).count(),
    }
    return render(request, "accounts/home.html", context)


def store_admin_required[**P](
    view: Callable[Concatenate[AuthenticatedHttpRequest, P], HttpResponse],
) -> Callable[Concatenate[AuthenticatedHttpRequest, P], HttpResponse]:
    """The users pages are a store admin's: anybody else gets a 404 (support uses the Django admin)."""

    @wraps(view)
    def wrapper(request: AuthenticatedHttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        if not request.user.is_store_admin:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def _own_business(user: User) -> Business:
    """The business of a store admin: always the acting user's, never one named in the request."""
    if user.business is None:
        raise Http404
    return user.business


@login_required
@store_admin_required
@require_GET
def user_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "accounts/user_list.html", {"users": managed_user_list(admin=request.user)})


@login_required
@store_admin_required
@require_http_methods(["GET", "POST"])
def user_create_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    business = _own_business(request.user)
    data = request.POST if request.method == "POST" else None
    form = UserCreateForm(data, business=business)
    if form.is_valid():
        try:
            user = services.user_create(
                business=business,
                created_by=request.user,
                username=form.cleaned_data["username"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                stores=form.cleaned_data["stores"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("User %(username)s created.") % {"username": user.username})
            return redirect("accounts:user_list")
    return render(request, "accounts/user_form.html", {"form": form, "title": _("New user"), "editing": None})


@login_required
@store_admin_required
@require_http_methods(["GET", "POST"])
def user_edit_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(managed_user_list(admin=request.user), pk=pk)
    business = _own_business(request.user)
    if request.method == "POST":
        form = UserEditForm(request.POST, business=business)
    else:
        initial = {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "role": user.role,
            "stores": list(user.stores.all()),
            "is_active": user.is_active,
        }
        form = UserEditForm(initial=initial, business=business)
    if form.is_valid():
        try:
            services.user_update(
                user=user,
                updated_by=request.user,
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                stores=form.cleaned_data["stores"],
                is_active=form.cleaned_data["is_active"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Changes to %(username)s saved.") % {"username": user.username})
            return redirect("accounts:user_list")
    context = {
        "form": form,
        "title": _("Edit user %(username)s") % {"username": user.username},
        "editing": user,
    }
    return render(request, "accounts/user_form.html", context)
