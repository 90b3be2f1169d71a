from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
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
