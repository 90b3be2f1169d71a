from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails
from django_ratelimit.decorators import ratelimit

from accounts.http import AuthenticatedHttpRequest
from mailer.services import store_test_email_send
from stores.models import Store

TEST_EMAILS_PER_HOUR = 5


class _TestEmailRequest(AuthenticatedHttpRequest):
    htmx: HtmxDetails  # set by django-htmx's middleware
    limited: bool  # set by django-ratelimit's decorator


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
    """The "Send test email" button of a store's email settings tab."""
    store = get_object_or_404(Store.objects.editable_by(request.user), pk=store_id)
    if request.limited:
        ok = False
        message = ngettext(
            "You can send %(count)d test email per hour and have reached that limit; nothing was sent. "
            "Try again later.",
            "You can send %(count)d test emails per hour and have reached that limit; nothing was sent. "
            "Try again later.",
            TEST_EMAILS_PER_HOUR,
        ) % {"count": TEST_EMAILS_PER_HOUR}
    else:
        result = store_test_email_send(store=store, user=request.user)
        ok, message = result.ok, result.message

    if request.htmx:
        return render(request, "mailer/test_email_result.html", {"ok": ok, "message": message})
    if ok:
        messages.success(request, message)
    else:
        messages.error(request, message)
    return redirect(reverse("stores:edit", args=[store.pk]) + "?tab=email")
