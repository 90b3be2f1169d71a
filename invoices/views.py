from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from invoices.selectors import customer_list


@login_required
def customer_list_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    context = {"customers": customer_list(user=request.user, search=search)[:200], "search": search}
    return render(request, "invoices/customer_list.html", context)
