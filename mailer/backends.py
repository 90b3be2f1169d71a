"""Sending a message while keeping what the SMTP server said about each recipient.

Django's SMTP backend hides partial refusals: smtplib's ``sendmail()`` returns the
recipients the server refused while it accepted others, and the backend drops that
answer. ``send_message`` sends through the configured mailer's own connection (same host,
credentials, TLS and timeout) and returns it.

A Celery worker process keeps its SMTP connection open from one message to the next
(``keep_connections_open``, called as each process starts): connecting, TLS, EHLO, AUTH and
QUIT are then paid once per connection instead of once per invoice. A kept connection is
closed after MAILER_SMTP_KEEP_OPEN_SECONDS without a message or after
MESSAGES_PER_CONNECTION messages, whichever comes first; one the server closed meanwhile is
opened again before anything was sent on it (see ``_Session.send``). Elsewhere (web
requests, shell, tests) every message has a connection of its own, as with Django's backend.
"""

import contextlib
import email.policy
import os
import secrets
import smtplib
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from email.headerregistry import BaseHeader, HeaderRegistry
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

DEFAULT_MAILER = "default"


# Header values parsed lately, kept for the next email (see _HeaderClasses).
PARSED_HEADERS_KEPT = 512


class _HeaderClasses(HeaderRegistry):
    """The standard registry, with two things made once instead of for every header:

    - each header's class: the stdlib makes a new class (``type(...)``) for every header it
      sets or parses, some 40 per invoice email, which was a fifth of the time spent turning
      one into bytes;
    - the header made from a given name and text, among the last PARSED_HEADERS_KEPT: parsing
      a header's text was 44% of that time, and most of an invoice email's headers are the
      same from one email to the next (each part's Content-Type, Content-Transfer-Encoding and
      MIME-Version, the store's From and Reply-To). A header is an immutable string with its
      parse, so emails can share it as one email can be turned into bytes twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}
        self._parsed = lru_cache(maxsize=PARSED_HEADERS_KEPT)(super().__call__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str:  # not a date or an address list: those are made afresh
            header: BaseHeader = self._parsed(name, value)
            return header
        return super().__call__(name, value)

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        self._made.pop(name.lower(), None)
        self._parsed.cache_clear()
        super().map_to_type(name, cls)


# RFC 5322 with CRLF line endings, as sent on the wire.
WIRE_POLICY = email.policy.SMTP.clone(header_factory=_HeaderClasses())


def wire_bytes(message: EmailMessage) -> bytes:
    """``message`` as sent: WIRE_POLICY, with each multipart's boundary chosen here.

    Left to itself, the generator picks a random boundary and then compiles a pattern of it
    and searches the whole text (the PDF's base64 included) for it, 15% of the time spent
    turning an invoice email into bytes. "=_" followed by random hex cannot occur in base64
    or quoted-printable text (an "=" there is padding or starts a hex escape), nor, but by
    guessing 128 random bits, in a text part."""
    built = message.message(policy=WIRE_POLICY)
    for part in built.walk():
        if part.is_multipart():
            part.set_boundary(f"=_{secrets.token_hex(16)}")
    return built.as_bytes()


# A kept connection then makes way for a new one: some servers cap the messages of a session.
MESSAGES_PER_CONNECTION = 100


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
    content = wire_bytes(message)
    if not recipients:
        return []
    envelope = _Envelope(sender, recipients, content, needed_envelope)
    session = _kept_session(using, mailer)
    if session is not None:
        return refusals(session.send(envelope))
    with mailer:
        return refusals(_converse(_connection_of(mailer), envelope))


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipients: list[str]
    content: bytes
    needed: set[str]


class _StaleConnection(Exception):
    """A kept connection that the server closed while it was idle: nothing was sent on it."""


def _connection_of(mailer: SMTPBackend) -> smtplib.SMTP:
    if mailer.connection is None:
        # open() swallowed the error: only with the deprecated fail_silently option.
        raise smtplib.SMTPServerDisconnected("The mailer could not connect; fail_silently hid why.")
    connection: smtplib.SMTP = mailer.connection
    return connection


def _converse(connection: smtplib.SMTP, envelope: _Envelope, *, reused: bool = False) -> dict[str, tuple[int, bytes]]:
    """smtplib's ``sendmail()``, with a look at the RCPT answers before DATA: when every needed
    address was refused, reset instead of sending to the rest. On a ``reused`` connection, a
    server that has gone away by the MAIL command raises ``_StaleConnection``: it took nothing."""
    try:
        connection.ehlo_or_helo_if_needed()
        size = len(envelope.content)
        options = [f"size={size}"] if connection.does_esmtp and connection.has_extn("size") else []
        code, reply = connection.mail(envelope.sender, options)
    except smtplib.SMTPServerDisconnected as gone:
        if reused:
            raise _StaleConnection from gone
        raise
    if code == 421 and reused:  # "closing the connection", sent to an idle client
        connection.close()
        raise _StaleConnection
    if code != 250:
        _reset(connection, code)
        raise smtplib.SMTPSenderRefused(code, reply, envelope.sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in envelope.recipients:
        code, reply = connection.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
            if code == 421:  # the server is closing the connection
                connection.close()
                raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(envelope.recipients):
        _reset(connection, 250)
        raise smtplib.SMTPRecipientsRefused(refused)
    if envelope.needed and envelope.needed <= refused.keys():
        _reset(connection, 250)
        raise NeededRecipientsRefused(
            {r: answer for r, answer in refused.items() if r in envelope.needed},
            withheld=[r for r in envelope.recipients if r not in refused],
        )
    code, reply = connection.data(envelope.content)
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


# --- Connections kept open by a worker process -------------------------------------------

# Answers after which the conversation is back at its start (reset), the connection usable.
_CONNECTION_STILL_GOOD = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


def _settings_of(mailer: SMTPBackend) -> tuple[Any, ...]:
    """What makes two mailers' connections interchangeable."""
    return (mailer.host, mailer.port, mailer.username, mailer.password, mailer.use_tls, mailer.use_ssl, mailer.timeout)


class _Session:
    """One mailer's connection, kept open between messages by one thread of one process."""

    def __init__(self, mailer: SMTPBackend) -> None:
        self.mailer = mailer
        self.settings = _settings_of(mailer)
        self.last_used = 0.0
        self.messages = 0

    def send(self, envelope: _Envelope) -> dict[str, tuple[int, bytes]]:
        reused = self._reusable()
        if not reused:
            self.close()
            self._open()
        try:
            try:
                refused = _converse(_connection_of(self.mailer), envelope, reused=reused)
            except _StaleConnection:
                # Closed by the server while idle (its own timeout, a restart): nothing went
                # out on it, so the message goes on a new connection, once.
                self.drop()
                self._open()
                refused = _converse(_connection_of(self.mailer), envelope)
        except _CONNECTION_STILL_GOOD:
            self._used()
            raise
        except BaseException:
            # A timeout, a broken connection, a time limit mid-conversation: where the
            # conversation stands is unknown, so it is not continued.
            self.drop()
            raise
        self._used()
        return refused

    def _open(self) -> None:
        self.mailer.open()
        self.messages = 0

    def _reusable(self) -> bool:
        """Open (not closed after a 421), not idle too long, not at its share of messages."""
        connection = self.mailer.connection
        if connection is None or connection.sock is None:
            return False
        idle = time.monotonic() - self.last_used
        return idle < float(settings.MAILER_SMTP_KEEP_OPEN_SECONDS) and self.messages < MESSAGES_PER_CONNECTION

    def _used(self) -> None:
        self.last_used = time.monotonic()
        self.messages += 1

    def drop(self) -> None:
        """Forgets the connection without a word to the server."""
        connection, self.mailer.connection = self.mailer.connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Says QUIT and closes; a server that has gone meanwhile is no error."""
        try:
            self.mailer.close()
        except (OSError, smtplib.SMTPException):
            self.drop()


class _Kept(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sessions: dict[str, _Session] = {}


_keeping = False
_kept = _Kept()


def keep_connections_open(keep: bool = True) -> None:
    """From now on this process keeps its SMTP connections open between messages, each
    thread its own (a Celery worker process calls this as it starts); with ``keep`` false,
    no longer (those kept are closed). Connections inherited through fork are never used:
    they are the parent's."""
    global _keeping, _kept
    if not keep:
        close_kept_connections()
    _keeping = keep
    _kept = _Kept()


def close_kept_connections() -> None:
    """QUIT and close this thread's kept connections (a worker process that ends)."""
    sessions = _kept.sessions if _kept.pid == os.getpid() else {}
    for session in sessions.values():
        session.close()
    sessions.clear()


def _kept_session(using: str, mailer: SMTPBackend) -> _Session | None:
    if not _keeping or float(settings.MAILER_SMTP_KEEP_OPEN_SECONDS) <= 0 or _kept.pid != os.getpid():
        return None
    session = _kept.sessions.get(using)
    if session is not None and session.settings != _settings_of(mailer):
        session.close()  # the mailer's settings changed
        session = None
    if session is None:
        session = _kept.sessions[using] = _Session(mailer)
    return session
