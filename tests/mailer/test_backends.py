"""send_message: Django's mailers, plus what the SMTP server said about each recipient."""

import email
import email.generator
import email.policy
import smtplib
import time
from collections.abc import Iterator
from email.headerregistry import BaseHeader, HeaderRegistry
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from pytest_django import Settings

from mailer import backends
from mailer.backends import NeededRecipientsRefused, Refusal, keep_connections_open, refusals, send_message
from tests.smtp import SMTPTestServer


def a_message() -> EmailMessage:
    return EmailMessage(
        subject="Hola",
        body="…",
        from_email="Tienda <facturas@finanzapro.local>",
        to=["ana@example.com"],
        bcc=["copia@example.com"],
    )


def test_it_returns_the_recipients_the_server_refused_while_it_took_the_others(smtp_server: SMTPTestServer) -> None:
    smtp_server.refuse("copia@example.com", 452, "4.2.2 Mailbox full")

    refused = send_message(a_message())

    assert refused == [Refusal("copia@example.com", 452, "4.2.2 Mailbox full")]
    assert refused[0].is_temporary
    assert smtp_server.envelope_recipients == ["ana@example.com"]


def test_nothing_refused_is_an_empty_list(smtp_server: SMTPTestServer) -> None:
    assert send_message(a_message()) == []
    assert smtp_server.envelope_recipients == ["ana@example.com", "copia@example.com"]


def test_another_backend_sends_as_usual_and_reports_no_refusals() -> None:
    # Without the smtp_server fixture, tests use Django's in-memory backend.
    assert send_message(a_message()) == []
    (sent,) = mail.outbox
    assert sent.subject == "Hola"


def test_when_every_needed_address_is_refused_nothing_goes_to_the_others(smtp_server: SMTPTestServer) -> None:
    smtp_server.refuse("ana@example.com", 550, "5.1.1 User unknown")

    with pytest.raises(NeededRecipientsRefused) as refused:
        send_message(a_message(), needed=["ana@example.com"])

    assert refusals(refused.value.recipients) == [Refusal("ana@example.com", 550, "5.1.1 User unknown")]
    assert refused.value.withheld == ["copia@example.com"]
    assert smtp_server.messages == []


def test_one_needed_address_taken_is_enough(smtp_server: SMTPTestServer) -> None:
    smtp_server.refuse("ana@example.com", 550, "5.1.1 User unknown")
    message = a_message()
    message.to = ["ana@example.com", "beto@example.com"]

    refused = send_message(message, needed=["ana@example.com", "beto@example.com"])

    assert refused == [Refusal("ana@example.com", 550, "5.1.1 User unknown")]
    assert smtp_server.envelope_recipients == ["beto@example.com", "copia@example.com"]


def test_the_other_answers_are_smtplibs(smtp_server: SMTPTestServer) -> None:
    smtp_server.refuse_all(550, "5.7.1 Relaying denied")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as everyone:
        send_message(a_message(), needed=["ana@example.com"])

    assert not isinstance(everyone.value, NeededRecipientsRefused)
    assert sorted(everyone.value.recipients) == ["ana@example.com", "copia@example.com"]


# --- A worker process keeps its connection from one message to the next ------------------


@pytest.fixture
def kept_connections() -> Iterator[None]:
    """This process keeps its SMTP connections open, as a Celery worker process does."""
    keep_connections_open()
    try:
        yield
    finally:
        keep_connections_open(False)


def peers(server: SMTPTestServer) -> list[tuple[str, int]]:
    return [received.peer for received in server.messages]


def test_outside_a_worker_every_message_has_a_connection_of_its_own(smtp_server: SMTPTestServer) -> None:
    send_message(a_message())
    send_message(a_message())

    first, second = peers(smtp_server)
    assert first != second


@pytest.mark.usefixtures("kept_connections")
def test_a_worker_sends_one_message_after_another_on_one_connection(smtp_server: SMTPTestServer) -> None:
    smtp_server.refuse("nadie@example.com", 550, "5.1.1 User unknown")
    send_message(a_message())
    refused_one = a_message()
    refused_one.to = ["nadie@example.com"]
    with pytest.raises(NeededRecipientsRefused):  # the conversation is reset, the connection kept
        send_message(refused_one, needed=["nadie@example.com"])
    send_message(a_message())

    assert len(smtp_server.messages) == 2
    assert len(set(peers(smtp_server))) == 1


@pytest.mark.usefixtures("kept_connections")
def test_a_connection_the_server_closed_while_idle_is_opened_again_and_the_message_sent_once(
    smtp_server: SMTPTestServer,
) -> None:
    send_message(a_message())
    smtp_server.close_connections()

    assert send_message(a_message()) == []

    first, second = peers(smtp_server)
    assert first != second
    assert smtp_server.envelope_recipients == ["ana@example.com", "copia@example.com"] * 2


@pytest.mark.usefixtures("kept_connections")
def test_a_connection_idle_for_longer_than_the_setting_is_replaced(
    smtp_server: SMTPTestServer, settings: Settings
) -> None:
    settings.MAILER_SMTP_KEEP_OPEN_SECONDS = 0.2
    send_message(a_message())
    time.sleep(0.3)
    send_message(a_message())
    send_message(a_message())

    first, second, third = peers(smtp_server)
    assert first != second == third


@pytest.mark.usefixtures("kept_connections")
def test_after_a_timeout_the_next_message_goes_on_a_new_connection(smtp_server: SMTPTestServer) -> None:
    send_message(a_message())
    smtp_server.stall(5)  # longer than the 2-second timeout of the test mailer
    with pytest.raises(OSError, match="timed out"):
        send_message(a_message())
    smtp_server.stall(0)

    send_message(a_message())

    first, second = peers(smtp_server)  # the stalled message was not taken
    assert first != second


@pytest.mark.usefixtures("kept_connections")
def test_a_connection_makes_way_for_a_new_one_after_its_share_of_messages(
    smtp_server: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "MESSAGES_PER_CONNECTION", 2)
    for _ in range(5):
        send_message(a_message())

    connections = peers(smtp_server)
    assert connections[0] == connections[1] != connections[2] == connections[3] != connections[4]


@pytest.mark.usefixtures("kept_connections")
def test_a_kept_connection_follows_a_change_of_the_mailers_settings(
    smtp_server: SMTPTestServer, settings: Settings
) -> None:
    send_message(a_message())
    other = SMTPTestServer()
    other.start()
    try:
        settings.MAILERS = {**settings.MAILERS, "default": other.mailer()}
        send_message(a_message())
    finally:
        other.stop()

    assert len(smtp_server.messages) == len(other.messages) == 1


def test_the_wire_policy_makes_each_headers_class_once() -> None:
    registry = backends.WIRE_POLICY.header_factory
    assert isinstance(registry, HeaderRegistry)

    assert registry["Subject"] is registry["subject"]
    assert registry["To"] is not registry["Subject"]


def test_the_next_email_parses_only_the_headers_it_does_not_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most headers of an invoice email are the same as the last one's: their text is parsed once."""
    backends.wire_bytes(an_invoice_like_message())
    parsed: list[str] = []
    new = BaseHeader.__new__

    def parsing(cls: type[BaseHeader], name: str, value: Any) -> BaseHeader:
        parsed.append(name.lower())
        return new(cls, name, value)

    monkeypatch.setattr(BaseHeader, "__new__", staticmethod(parsing))
    message = an_invoice_like_message()
    message.subject = "Factura 1901 de Café Ñandú"
    message.extra_headers["Message-ID"] = "<factura-1901@finanzapro.local>"

    wire = backends.wire_bytes(message)
    monkeypatch.undo()

    sent = email.message_from_bytes(wire, policy=email.policy.default)
    assert (sent["Subject"], sent["Message-ID"]) == ("Factura 1901 de Café Ñandú", "<factura-1901@finanzapro.local>")
    assert sent["From"].addresses[0].display_name == "Café Ñandú"
    # Its own subject and Message-ID, and each multipart's Content-Type with its new boundary.
    assert sorted(parsed) == ["content-type", "content-type", "message-id", "subject"]


def an_invoice_like_message() -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject="Factura 1900 de Café Ñandú",
        body="Hola, José:\n\nTe adjuntamos la factura. " * 20,
        from_email="Café Ñandú <facturas@finanzapro.local>",
        to=["José Pérez <jose@example.com>"],
        reply_to=["tienda@example.com"],
        headers={"Message-ID": "<factura-1900@finanzapro.local>", "Date": "Mon, 30 Nov 2026 15:04:31 +0000"},
    )
    message.attach_alternative("<p>Hola, José</p>", "text/html")
    message.attach("Factura-1900.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40, "application/pdf")
    return message


def test_the_wire_policy_writes_the_same_bytes_as_the_standard_smtp_policy() -> None:
    message = an_invoice_like_message()

    def wire(policy: "email.policy.EmailPolicy[Any]") -> bytes:
        built = message.message(policy=policy)
        for number, part in enumerate(built.walk()):
            if part.is_multipart():
                part.set_boundary(f"limite-{number}")
        return built.as_bytes()

    sent = wire(backends.WIRE_POLICY)
    assert sent == wire(email.policy.SMTP)
    assert wire(backends.WIRE_POLICY) == sent  # again, with the headers parsed the first time
    assert "=?utf-8?" in sent.split(b"\r\n\r\n", 1)[0].decode("ascii")
    parsed = email.message_from_bytes(sent, policy=email.policy.default)
    assert parsed["Subject"] == "Factura 1900 de Café Ñandú"
    assert parsed["To"].addresses[0].display_name == "José Pérez"


def test_the_boundaries_are_chosen_before_writing_so_the_text_is_not_searched_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def searched(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the generator chose a boundary and searched the text for it")

    monkeypatch.setattr(email.generator.Generator, "_make_boundary", classmethod(searched))
    message = an_invoice_like_message()

    sent = backends.wire_bytes(message)

    parsed = email.message_from_bytes(sent, policy=email.policy.default)
    boundaries = [part.get_boundary() or "" for part in parsed.walk() if part.is_multipart()]
    assert len(boundaries) == 2  # mixed, holding the alternatives and the PDF
    assert all(boundary.startswith("=_") and len(boundary) == 34 for boundary in boundaries)
    assert len(set(boundaries)) == 2
    assert backends.wire_bytes(message).count(boundaries[0].encode()) == 0  # a new one for each message
    assert [part.get_content_type() for part in parsed.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    assert parsed.get_body(("plain",)).get_content().startswith("Hola, José:")  # type: ignore[union-attr]
    pdf = next(part for part in parsed.walk() if part.get_content_type() == "application/pdf")
    assert pdf.get_content() == b"%PDF-1.7\n" + bytes(range(256)) * 40
