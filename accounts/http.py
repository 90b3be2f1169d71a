from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind ``@login_required``: ``user`` is a signed-in User."""

    user: User
