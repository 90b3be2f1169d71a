"""Email address lists as people type them: "a@x.com; b@y.com", "a@x.com,b@y.com;".

One parser for every address field (a store's copies and failure contacts, a customer's
addresses): ``;`` or ``,`` separate, spaces and a trailing separator are forgiven, duplicates
(ignoring case) are dropped, every address is validated and the bad one is named. Any CR or
LF is refused outright, so no value can smuggle a header into an email.
"""

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

MAX_ADDRESSES = 20
SEPARATOR = "; "
_SPLIT = re.compile(r"[;,]")
_validate_email = EmailValidator()


def reject_line_breaks(value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValidationError(_("Email addresses cannot contain line breaks."), code="line_break")


def parse_address_list(value: str | None) -> list[str]:
    """The addresses in ``value``, validated, lower-cased and without duplicates."""
    if not value:
        return []
    reject_line_breaks(value)
    addresses: list[str] = []
    for part in _SPLIT.split(value):
        address = part.strip()
        if not address:
            continue
        try:
            _validate_email(address)
        except ValidationError:
            raise ValidationError(
                _("“%(address)s” is not a valid email address."), code="invalid", params={"address": address}
            ) from None
        address = address.lower()
        if address not in addresses:
            addresses.append(address)
    if len(addresses) > MAX_ADDRESSES:
        raise ValidationError(
            _("Enter at most %(max)d addresses (there are %(count)d)."),
            code="too_many",
            params={"max": MAX_ADDRESSES, "count": len(addresses)},
        )
    return addresses


def normalize_address_list(value: str | None) -> str:
    """``value`` as stored: ``a@x.com; b@y.com``."""
    return SEPARATOR.join(parse_address_list(value))


def validate_address_list(value: str) -> None:
    parse_address_list(value)


def validate_single_address(value: str) -> None:
    reject_line_breaks(value)
    _validate_email(value)


class EmailListFormField(forms.CharField):
    """A text input for several addresses; cleans to the normalized string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strip", False)  # line breaks must reach validation, not be trimmed away
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        return normalize_address_list(value)


class SingleEmailFormField(forms.EmailField):
    """One address; a line break anywhere, even at the end, is an error."""

    def to_python(self, value: Any) -> str:
        if isinstance(value, str):
            reject_line_breaks(value)  # before EmailField strips the ends
        return str(super().to_python(value)).lower()


class EmailListField(models.TextField[str, str]):
    """Model field holding a normalized address list; validated the same way everywhere."""

    default_validators = [validate_address_list]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def formfield(self, **kwargs: Any) -> Any:
        # One line, as people type a list of addresses; TextField would offer a textarea.
        widget = forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"})
        return super().formfield(**{"form_class": EmailListFormField, "widget": widget, **kwargs})
