"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, on a port the operating system picks.

Use it through the ``smtp_server`` fixture (tests/conftest.py), which starts it, points
``settings.MAILERS["default"]`` at it with a 2-second timeout, and stops it afterwards::

    def test_it_arrives(smtp_server: SMTPTestServer) -> None:
        send_something()
        (received,) = smtp_server.messages
        assert received.envelope_recipients == ["ana@example.com"]
        assert received.message["Subject"] == "Hola"

Besides receiving, it can be told to misbehave the way real servers do:

- ``refuse("ana@example.com", 550)``: answer that recipient's ``RCPT TO`` with a 5xx
  (address rejected) or 4xx (try later) reply; the other recipients still get the message.
- ``refuse_all(550)``: refuse every recipient.
- ``stall(5)``: take the whole message, then say nothing for 5 seconds, longer than the
  client's timeout; the message is then refused and never counted as received.
  ``stall(60, at="quit")``: accept the message (250, counted as received), then say nothing
  to the client's ``QUIT``: the client has its 250 but has not finished. A stall ends early
  when the client goes away or the test calls ``stall(0)``; ``stalled_peers`` lists the
  clients (host, port) that reached a stall, so a test can tell a client is stuck there.
- ``require_login("user", "password")``: advertise AUTH (without TLS: this is a test) and
  refuse other credentials with ``535``.
- ``close_connections()``: close the clients' connections, as a server does with idle ones.
- ``stop()``: close the port, so connecting is refused as with a server that is down.

The server runs in its own thread with its own event loop; the settings above may be
changed from the test while it runs.
"""

import asyncio
import email
import email.message
import email.policy
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
MAIL_TIMEOUT = 2  # seconds: long enough for a loaded machine, short enough for a stall test

type StallPoint = Literal["data", "quit"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted, as the envelope and the headers say."""

    envelope_sender: str
    envelope_recipients: list[str]  # only the recipients the server accepted
    message: email.message.EmailMessage  # parsed with email.policy.default
    peer: tuple[str, int]  # the client's end of the connection it came on

    def header_addresses(self, name: str) -> list[str]:
        """The addresses of header ``name`` (To, Reply-To…), without display names."""
        header = self.message[name]
        return [address.addr_spec for address in header.addresses] if header is not None else []

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return str(part.get_content()) if part is not None else ""


@dataclass(frozen=True)
class Refusal:
    code: int
    text: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


@dataclass
class _Behaviour:
    refused: dict[str, Refusal] = field(default_factory=dict)  # lower-cased address → reply
    refuse_everyone: Refusal | None = None
    stall_seconds: float = 0
    stall_at: StallPoint = "data"  # before answering the message, or after accepting it (at QUIT)
    credentials: tuple[str, str] | None = None


def _peer(session: Session) -> tuple[str, int]:
    """The client's (host, port): aiosmtpd types it as str, but for TCP it is a tuple."""
    peer: Any = session.peer
    return str(peer[0]), int(peer[1])


class _Handler:
    """aiosmtpd's hooks; ``server`` decides, this only applies its settings."""

    def __init__(self, server: "SMTPTestServer") -> None:
        self.server = server

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        self.server.clients.add(smtp)
        if self.server.behaviour.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        behaviour = self.server.behaviour
        refusal = behaviour.refuse_everyone or behaviour.refused.get(address.lower())
        if refusal is not None:
            return refusal.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def _stall(self, session: Session, at: StallPoint) -> bool:
        """Say nothing while the stall at ``at`` lasts; True if there was one. Cancelled
        (by aiosmtpd) when the client goes away."""
        behaviour = self.server.behaviour
        if not behaviour.stall_seconds or behaviour.stall_at != at:
            return False
        self.server.stalled_peers.append(_peer(session))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + behaviour.stall_seconds
        while behaviour.stall_seconds and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        return True

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if await self._stall(session, "data"):
            # The client gave up long ago; nothing was delivered.
            return "451 4.3.0 Took too long"
        assert isinstance(envelope.content, bytes)  # decode_data is off
        assert envelope.mail_from is not None
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.server.messages.append(
            ReceivedMessage(
                envelope_sender=envelope.mail_from,
                envelope_recipients=list(envelope.rcpt_tos),
                message=message,
                peer=_peer(session),
            )
        )
        return "250 OK: queued"

    async def handle_QUIT(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        await self._stall(session, "quit")
        return "221 Bye"

    def authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        expected = self.server.behaviour.credentials
        given = (
            (auth_data.login.decode(), auth_data.password.decode()) if isinstance(auth_data, LoginPassword) else None
        )
        # handled=False: aiosmtpd answers a failure with "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=expected is None or given == expected, handled=False, auth_data=auth_data)


class _Controller(Controller):
    """aiosmtpd's threaded controller, listening on a port the operating system picks.

    Binding port 0 avoids the race of "find a free port, close it, bind it again"; the
    controller must learn the real port before it connects to itself to check it is up.
    """

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SMTPTestServer:
    """A real SMTP server on 127.0.0.1 that records what it receives. See the module's docstring."""

    host = HOST

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.behaviour = _Behaviour()
        self.stalled_peers: list[tuple[str, int]] = []  # clients that reached a stall, in order
        self.clients: set[SMTP] = set()  # the connections that sent a MAIL command
        handler = _Handler(self)
        self._controller = _Controller(
            handler,
            hostname=HOST,
            port=0,
            server_hostname="smtp.test",
            authenticator=handler.authenticate,
            # Plain-text AUTH is what tests need; aiosmtpd refuses it without TLS by default.
            auth_require_tls=False,
        )
        self._running = False

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Close the port: from now on connecting is refused. Safe to call twice."""
        if self._running:
            self._controller.stop()
            self._running = False

    def mailer(self, **options: Any) -> dict[str, Any]:
        """A ``settings.MAILERS`` entry for Django's SMTP backend pointing at this server."""
        return {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": HOST, "port": self.port, "timeout": MAIL_TIMEOUT, **options},
        }

    # --- Misbehaving ----------------------------------------------------------------------

    def refuse(self, address: str, code: int = 550, text: str | None = None) -> None:
        """Answer ``RCPT TO:<address>`` with ``code`` (5xx: rejected; 4xx: try later)."""
        if text is None:
            text = "5.1.1 Mailbox unavailable" if code >= 500 else "4.2.1 Mailbox busy, try again later"
        self.behaviour.refused[address.lower()] = Refusal(code, text)

    def refuse_all(self, code: int = 550, text: str = "5.7.1 Relaying denied") -> None:
        self.behaviour.refuse_everyone = Refusal(code, text)

    def stall(self, seconds: float, *, at: StallPoint = "data") -> None:
        """Answer nothing for ``seconds`` (make it longer than the timeout): ``at="data"``, after
        the message, which is then not taken; ``at="quit"``, after taking it (250), at ``QUIT``.
        ``stall(0)`` ends the stalls in progress too."""
        self.behaviour.stall_seconds, self.behaviour.stall_at = seconds, at

    def close_connections(self) -> None:
        """Close every client connection, as a server does with an idle client after its own
        timeout (or when it restarts); the port stays open."""
        done = threading.Event()

        def close() -> None:
            for client in self.clients:
                if client.transport is not None:
                    client.transport.close()
            self.clients.clear()
            done.set()

        self._controller.loop.call_soon_threadsafe(close)
        done.wait(5)

    def require_login(self, username: str, password: str) -> None:
        self.behaviour.credentials = (username, password)

    # --- Reading ----------------------------------------------------------------------------

    @property
    def envelope_recipients(self) -> list[str]:
        """Every accepted recipient of every message, in order."""
        return [address for received in self.messages for address in received.envelope_recipients]
