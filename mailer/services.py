"""The mailer's actions: what gets sent, to whom, and what the mail server answered."""

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import User
from finanzapro.email_addresses import parse_address_list
from mailer.backends import Refusal, decode_reply, refusals, send_message
from mailer.emails import render_email
from stores.models import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestEmailResult:
    """What became of a test email. ``error`` is in plain words, in the language active when sending."""

    __test__ = False  # a result, not a test class for pytest to collect

    sent: bool  # the server took the message for at least one recipient
    accepted: tuple[str, ...] = ()
    refused: tuple[Refusal, ...] = ()
    error: str = ""  # why nothing, or not everything, was sent

    @property
    def ok(self) -> bool:
        return self.sent and not self.error

    @property
    def message(self) -> str:
        """The whole outcome, for the person who pressed the button."""
        parts = []
        if self.sent:
            parts.append(gettext("Test email sent to %(addresses)s.") % {"addresses": ", ".join(self.accepted)})
        if self.error:
            parts.append(self.error)
        return " ".join(parts)


def sender_address() -> str:
    """The address every store's email is sent from: DEFAULT_FROM_EMAIL's, without its name."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


def store_sender(store: Store) -> str:
    """``"Store name" <sender address>``: customers see the store's name, our domain sends.

    ``Address`` quotes a name with a comma or a quote; a non-ASCII name is encoded when the
    message is serialized.
    """
    return str(Address(display_name=store.name, addr_spec=sender_address()))


def store_test_email_send(*, store: Store, user: User) -> TestEmailResult:
    """Send a sample invoice email, made with ``store``'s saved email settings, to ``user``'s address.

    The email is written in the user's language; the result's words are in the active one.
    Never raises for a mail server or network problem: the result says what happened.
    """
    if not user.email:
        return TestEmailResult(
            sent=False,
            error=gettext(
                "Your user account has no email address, so the test email has nowhere to go. "
                "Add one to your account and try again."
            ),
        )
    try:
        message = _test_email(store=store, user=user)
        refused = send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        logger.warning("Test email of store %s: every recipient refused: %s", store.pk, error.recipients)
        everyone = tuple(refusals(error.recipients))
        return TestEmailResult(sent=False, refused=everyone, error=_explain_refusals(everyone))
    except OSError as error:  # smtplib's errors are OSErrors too
        logger.warning("Test email of store %s not sent: %r", store.pk, error)
        return TestEmailResult(sent=False, error=_explain(error))
    except (ValueError, ValidationError) as error:  # an address the email headers cannot hold
        logger.warning("Test email of store %s not built: %r", store.pk, error)
        detail = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        return TestEmailResult(sent=False, error=gettext("The email could not be sent: %(error)s") % {"error": detail})

    if refused:
        logger.warning("Test email of store %s: recipients refused: %s", store.pk, refused)
    refused_addresses = {refusal.address.lower() for refusal in refused}
    return TestEmailResult(
        sent=True,
        accepted=tuple(address for address in message.recipients() if address.lower() not in refused_addresses),
        refused=tuple(refused),
        error=_explain_refusals(refused),
    )


def _test_email(*, store: Store, user: User) -> EmailMultiAlternatives:
    sender = store_sender(store)
    reply_to = store.reply_to or store.email
    copies = [address for address in parse_address_list(store.copy_to) if address != user.email.lower()]
    with translation.override(user.language):
        report = store.email_report or store.print_report
        # Named here, in the user's language: a report format's name is bilingual.
        report_name = str(report) if report else gettext("Full-page invoice (Letter), the default")
        context = {
            "store": store,
            "user": user,
            "sender_address": sender_address(),
            "reply_to": reply_to,
            "copies": copies,
            "report": report_name,
            "report_is_the_print_report": store.email_report is None and store.print_report is not None,
        }
        rendered = render_email("store-test", context)
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=sender,
        to=[user.email],
        bcc=copies,
        reply_to=[reply_to] if reply_to else None,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def _explain_refusals(refused: Sequence[Refusal]) -> str:
    """What happened to each refused address, in plain words, with the server's answer."""
    explanations = []
    for refusal in refused:
        params = {"address": refusal.address, "code": refusal.code, "reply": refusal.reply}
        if refusal.is_temporary:
            explanation = gettext(
                "The mail server temporarily refused %(address)s (%(code)s %(reply)s). Try again later."
            )
        else:
            explanation = gettext(
                "The mail server rejected the address %(address)s (%(code)s %(reply)s). "
                "Check that it is spelled correctly."
            )
        explanations.append(explanation % params)
    return " ".join(explanations)


def _is_timeout(error: OSError) -> bool:
    # smtplib turns a timeout while waiting for an answer into SMTPServerDisconnected.
    return isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError)


def _explain(error: OSError) -> str:
    """Why nothing was sent, in plain words, with the server's code and text when it gave one."""
    if _is_timeout(error):
        return gettext(
            "The mail server did not answer in time, so the test email was probably not sent. "
            "Try again in a few minutes; if it keeps happening, tell FinanzaPro support."
        )
    if isinstance(error, smtplib.SMTPResponseException):
        params = {"code": error.smtp_code, "reply": decode_reply(error.smtp_error)}
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return (
                gettext(
                    "The mail server did not accept FinanzaPro's user name or password (%(code)s %(reply)s). "
                    "No email was sent; please tell FinanzaPro support."
                )
                % params
            )
        if 400 <= error.smtp_code < 500:
            return (
                gettext(
                    "The mail server cannot take the email right now (%(code)s %(reply)s). "
                    "No email was sent; try again in a few minutes."
                )
                % params
            )
        return gettext("The mail server refused the email (%(code)s %(reply)s). No email was sent.") % params
    if isinstance(error, smtplib.SMTPException):
        return gettext("The email could not be sent: %(error)s") % {"error": error}
    # Connection refused, host not found, network unreachable, TLS handshake failed…
    return gettext(
        "Could not connect to the mail server: it is down or unreachable. No email was sent. "
        "Try again in a few minutes; if it keeps happening, tell FinanzaPro support."
    )
