"""The ``Idempotency-Key`` header: a POS terminal that retries a POST gets the first answer again.

A key belongs to one user. The first request with it inserts an ``ApiIdempotencyKey`` row, does
the work and stores the response, all in one transaction; a retry replays the stored response.
A concurrent retry blocks on the row's unique constraint until the first commits, then replays
it; if the first failed, nothing was kept and the retry does the work itself.
"""

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.exceptions import APIException, NotAuthenticated, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.status import is_success

from accounts.models import User
from invoices.models import ApiIdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique value per operation (a UUID, say), up to 255 characters. Retrying the request with the same "
        "key returns the first successful response (same status and body, with `Idempotent-Replayed: true`) "
        "instead of doing the work twice. Reusing a key for a different request is refused with 422. "
        "Failed requests keep nothing: retry them with the same key."
    ),
)


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = _("This Idempotency-Key was already used for a different request. Use a new key.")
    default_code = "idempotency_key_reused"


def request_fingerprint(request: Request) -> str:
    """What makes two requests "the same": method, path and the parsed body, keys in any order."""
    data: Any = request.data
    if hasattr(data, "lists"):  # a QueryDict from a form or multipart body
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


Handler = Callable[..., Response]


def idempotent(handler: Handler) -> Handler:
    """Makes a POST handler of an API view honour the ``Idempotency-Key`` header."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER, "").strip()
        if not key:
            return handler(view, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise ValidationError(
                {
                    HEADER: [
                        _("The Idempotency-Key header can have at most %(max)d characters.") % {"max": MAX_KEY_LENGTH}
                    ]
                }
            )
        user = request.user
        if not isinstance(user, User):
            raise NotAuthenticated()
        fingerprint = request_fingerprint(request)
        with transaction.atomic():
            # The INSERT waits while another transaction holds an uncommitted row with this key.
            record, created = ApiIdempotencyKey.objects.select_for_update().get_or_create(
                user=user,
                key=key,
                defaults={"method": request.method or "", "path": request.path, "request_fingerprint": fingerprint},
            )
            if not created:
                if record.request_fingerprint != fingerprint or record.response_status is None:
                    raise IdempotencyKeyReused()
                response = Response(record.response_body, status=record.response_status)
                response["Idempotent-Replayed"] = "true"
                return response
            response = handler(view, request, *args, **kwargs)
            if is_success(response.status_code):
                record.response_status = response.status_code
                record.response_body = response.data
                record.save(update_fields=["response_status", "response_body"])
            else:
                # Keep nothing, not even the key: the client may correct the problem and retry.
                transaction.set_rollback(True)
            return response

    return wrapper
