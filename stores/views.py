from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from stores.selectors import business_list_for_filter, store_list


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
