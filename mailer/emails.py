"""Emails are three small templates: ``emails/<name>-subject.html``, ``-body-text.html`` and
``-body-html.html``, rendered together by ``render_email``."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(name: str, context: Mapping[str, Any]) -> RenderedEmail:
    """The subject and both bodies of email ``name``, in the active language.

    The subject and text templates turn autoescaping off themselves: "&" must stay "&"
    outside HTML.
    """
    subject = render_to_string(f"emails/{name}-subject.html", dict(context))
    return RenderedEmail(
        # A header is one line: the template's line breaks and indentation are not content.
        subject=" ".join(subject.split()),
        text=render_to_string(f"emails/{name}-body-text.html", dict(context)).strip() + "\n",
        html=render_to_string(f"emails/{name}-body-html.html", dict(context)),
    )
