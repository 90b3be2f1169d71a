"""Sending a message while keeping what the SMTP server said about each recipient.

Django's SMTP backend hides partial refusals: smtplib's ``sendmail()`` returns the
recipients the server refused while it accepted others, and the backend drops that
answer. ``send_message`` sends through the configured mailer's own connection (same host,
credentials, TLS and timeout) and returns it.
"""

import email.policy
import smtplib
from dataclasses import dataclass

from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

DEFAULT_MAILER = "default"


@dataclass(frozen=True)
class Refusal:
    """A recipient the server did not take, with its answer."""

    address: str
    code: int
    reply: str  # the server's text after the code, e.g. "5.1.1 User unknown"

    @property
    def is_temporary(self) -> bool:
        """4xx: the server may take it later; 5xx: it will not."""
        return 400 <= self.code < 500


def decode_reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())  # a multi-line answer arrives joined by line breaks


def refusals(refused: dict[str, tuple[int, bytes]]) -> list[Refusal]:
    """smtplib's refused-recipients dict (from sendmail() or SMTPRecipientsRefused) as Refusals."""
    return [Refusal(address, code, decode_reply(reply)) for address, (code, reply) in refused.items()]


def send_message(message: EmailMessage, *, using: str = DEFAULT_MAILER) -> list[Refusal]:
    """Send ``message`` with mailer ``using``; return the recipients the server refused.

    An empty list means every recipient was accepted. When nothing could be sent, smtplib's
    exceptions propagate: ``SMTPRecipientsRefused`` (every recipient refused, with the same
    details in ``.recipients``), ``SMTPAuthenticationError``, ``SMTPServerDisconnected``
    (also for a timeout while waiting for an answer), ``ConnectionRefusedError``… all of
    them ``OSError``. A recipient the server accepted may still bounce later.

    Other backends (console, file, memory, an API provider) have no SMTP conversation to
    read: whatever they take counts as accepted.
    """
    mailer = mailers[using]
    if not isinstance(mailer, SMTPBackend):
        mailer.send_messages([message])
        return []
    # As the backend itself sends: bare addresses (IDNA domains) and SMTP line endings.
    sender = mailer.prep_address(message.from_email)
    recipients = [mailer.prep_address(address) for address in message.recipients()]
    content = message.message(policy=email.policy.SMTP).as_bytes()
    if not recipients:
        return []
    with mailer:
        if mailer.connection is None:
            # open() swallowed the error: only with the deprecated fail_silently option.
            raise smtplib.SMTPServerDisconnected("The mailer could not connect; fail_silently hid why.")
        refused = mailer.connection.sendmail(sender, recipients, content)
    return refusals(refused)
