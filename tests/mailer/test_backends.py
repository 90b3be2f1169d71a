"""send_message: Django's mailers, plus what the SMTP server said about each recipient."""

import smtplib

import pytest
from django.core import mail
from django.core.mail import EmailMessage

from mailer.backends import NeededRecipientsRefused, Refusal, refusals, send_message
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
