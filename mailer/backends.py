"""Sending a message while keeping what the SMTP server said about each recipient.

Django's SMTP backend hides partial refusals: smtplib's ``sendmail()`` returns the
recipients the server refused while it accepted others, and the backend drops that
answer. ``send_message`` sends through the configured mailer's own connection (same host,
credentials, TLS and timeout) and returns it.
"""

import contextlib
import email.policy
import smtplib
from collections.abc import Collection
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


class NeededRecipientsRefused(smtplib.SMTPRecipientsRefused):
    """The server refused every one of the addresses the message is for (the customer's), so
    it was not sent to the others either: ``recipients`` holds the refusals, ``withheld`` the
    addresses the server would have taken (the store's copies)."""

    def __init__(self, recipients: dict[str, tuple[int, bytes]], withheld: list[str]) -> None:
        super().__init__(recipients)
        self.withheld = withheld


def send_message(message: EmailMessage, *, using: str = DEFAULT_MAILER, needed: Collection[str] = ()) -> list[Refusal]:
    """Send ``message`` with mailer ``using``; return the recipients the server refused.

    An empty list means every recipient was accepted. When nothing could be sent, smtplib's
    exceptions propagate: ``SMTPRecipientsRefused`` (every recipient refused, with the same
    details in ``.recipients``), ``SMTPAuthenticationError``, ``SMTPServerDisconnected``
    (also for a timeout while waiting for an answer), ``ConnectionRefusedError``… all of
    them ``OSError``. A recipient the server accepted may still bounce later.

    ``needed``: addresses of which the server must take at least one, or nothing is sent
    (the conversation is reset before the message): ``NeededRecipientsRefused``. Copies of
    an email its addressee never got would only mislead.

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
    needed_envelope = {mailer.prep_address(address) for address in needed}
    content = message.message(policy=email.policy.SMTP).as_bytes()
    if not recipients:
        return []
    with mailer:
        if mailer.connection is None:
            # open() swallowed the error: only with the deprecated fail_silently option.
            raise smtplib.SMTPServerDisconnected("The mailer could not connect; fail_silently hid why.")
        if not needed_envelope:
            return refusals(mailer.connection.sendmail(sender, recipients, content))
        return refusals(_send_if_needed_accepted(mailer.connection, sender, recipients, content, needed_envelope))


def _send_if_needed_accepted(
    connection: smtplib.SMTP, sender: str, recipients: list[str], content: bytes, needed: set[str]
) -> dict[str, tuple[int, bytes]]:
    """smtplib's ``sendmail()``, with a look at the RCPT answers before DATA: when every
    ``needed`` address was refused, reset instead of sending to the rest."""
    connection.ehlo_or_helo_if_needed()
    options = [f"size={len(content)}"] if connection.does_esmtp and connection.has_extn("size") else []
    code, reply = connection.mail(sender, options)
    if code != 250:
        _reset(connection, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in recipients:
        code, reply = connection.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
            if code == 421:  # the server is closing the connection
                connection.close()
                raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _reset(connection, 250)
        raise smtplib.SMTPRecipientsRefused(refused)
    if needed <= refused.keys():
        _reset(connection, 250)
        raise NeededRecipientsRefused(
            {r: answer for r, answer in refused.items() if r in needed},
            withheld=[r for r in recipients if r not in refused],
        )
    code, reply = connection.data(content)
    if code != 250:
        _reset(connection, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


def _reset(connection: smtplib.SMTP, code: int) -> None:
    if code == 421:  # the server is closing the connection
        connection.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):  # as smtplib's own _rset()
        connection.rset()
