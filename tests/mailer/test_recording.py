"""How a try's outcome is written: a try that the server accepted for every recipient is
recorded in one statement, with the same rows and the same claim rules as the general
recording, which every other outcome goes through (tests/mailer/test_delivery.py)."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from invoices.models import Customer
from mailer import backends, services
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient, FailureNotice
from mailer.services import delivery_send
from stores.models import Store
from tests.mailer.test_delivery import COPIES, CUSTOMER, apply_invoice, delivery_of, emailing_store, short_retries
from tests.smtp import SMTPTestServer

pytestmark = pytest.mark.django_db
__all__ = ["emailing_store", "short_retries"]  # fixtures shared with test_delivery


@pytest.fixture(params=["one statement", "general"])
def recording(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs twice: as the code chooses, and with the general recording only."""
    if request.param == "general":
        monkeypatch.setattr(services, "_settles_as_all_accepted", lambda *args: False)
    return str(request.param)


def recorded(delivery: Delivery) -> dict[str, Any]:
    """What a try left in the database, without the values that differ from one email to another."""
    delivery.refresh_from_db()
    (attempt,) = delivery.attempts.all()
    recipients = list(delivery.recipients.order_by("role", "address"))
    return {
        "delivery": {
            "state": delivery.state,
            "attempt_count": delivery.attempt_count,
            "next_attempt_at": delivery.next_attempt_at,
            "sent_at is the try's end": delivery.sent_at == attempt.finished_at,
            "failed_at": delivery.failed_at,
            "failure": (delivery.failure_kind, delivery.failure_detail),
            "report": (delivery.report_format and delivery.report_format.code, delivery.report_problem),
            "unknown_outcomes": delivery.unknown_outcomes,
        },
        "attempt": (attempt.number, attempt.outcome, attempt.smtp_code, attempt.detail, attempt.problem),
        "attempt finished": attempt.finished_at is not None and attempt.finished_at >= attempt.started_at,
        "recipients": [
            (r.address, r.role, r.state, r.smtp_code, r.smtp_reply, r.sent_at == attempt.finished_at)
            for r in recipients
        ],
        "notices": FailureNotice.objects.filter(delivery=delivery).count(),
    }


EVERYONE_ACCEPTED = {
    "delivery": {
        "state": Delivery.State.SENT,
        "attempt_count": 1,
        "next_attempt_at": None,
        "sent_at is the try's end": True,
        "failed_at": None,
        "failure": ("", ""),
        "report": ("invoice-letter", ""),
        "unknown_outcomes": 0,
    },
    "attempt": (1, DeliveryAttempt.Outcome.ACCEPTED, None, "", DeliveryAttempt.Problem.NONE),
    "attempt finished": True,
    "recipients": [  # copies first ("copy" < "to")
        (address, DeliveryRecipient.Role.COPY, DeliveryRecipient.State.SENT, None, "", True)
        for address in sorted(COPIES)
    ]
    + [(CUSTOMER, DeliveryRecipient.Role.TO, DeliveryRecipient.State.SENT, None, "", True)],
    "notices": 0,
}


def test_a_try_accepted_for_every_recipient_is_recorded_alike_by_both_recordings(
    recording: str,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    assert sorted(delivery.recipients.values_list("address", flat=True)) == sorted([CUSTOMER, *COPIES])

    assert delivery_send(delivery_id=delivery.pk).retry_in is None

    assert recorded(delivery) == EVERYONE_ACCEPTED
    assert len(smtp_server.messages) == 1


def statements_after_the_attempt_row(sql: list[str]) -> list[str]:
    (insert,) = [k for k, text in enumerate(sql) if text.startswith('INSERT INTO "mailer_deliveryattempt"')]
    return sql[insert + 1 :]


def a_try_with_its_statements(store: Store, customer: Customer, cashier: User) -> tuple[Delivery, list[str]]:
    """An invoice applied, and its delivery's first try: the delivery, and the try's SQL."""
    delivery = delivery_of(apply_invoice(store, customer, cashier))
    with CaptureQueriesContext(connection) as queries:
        delivery_send(delivery_id=delivery.pk)
    return delivery, [query["sql"] for query in queries.captured_queries]


def test_a_try_accepted_for_every_recipient_is_recorded_in_one_statement(
    smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    delivery, statements = a_try_with_its_statements(emailing_store, customer_a, cashier_a)

    (recording,) = statements_after_the_attempt_row(statements)
    assert recording.lstrip().startswith("WITH claimed AS (")
    assert "FOR UPDATE" not in recording
    assert recorded(delivery) == EVERYONE_ACCEPTED


def test_a_refused_copy_is_recorded_by_the_general_recording(
    smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.refuse(COPIES[0], 550, "5.1.1 No such user")
    delivery, statements = a_try_with_its_statements(emailing_store, customer_a, cashier_a)

    recording = statements_after_the_attempt_row(statements)
    assert any("FOR UPDATE" in text for text in recording)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SENT
    refused = delivery.recipients.get(address=COPIES[0])
    assert (refused.state, refused.smtp_code) == (DeliveryRecipient.State.FAILED, 550)
    assert FailureNotice.objects.filter(delivery=delivery).exists()  # the store is told


def taken_back_during_the_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweeper takes the delivery back while the SMTP conversation overruns (as it does
    with a worker it believes dead): queued again, its try's outcome unknown."""

    def overrunning(message: Any, **kwargs: Any) -> Any:
        delivery = Delivery.objects.get(message_id=message.extra_headers["Message-ID"])
        Delivery.objects.filter(pk=delivery.pk).update(
            state=Delivery.State.QUEUED, next_attempt_at=timezone.now(), unknown_outcomes=1
        )
        DeliveryAttempt.objects.filter(delivery=delivery).update(outcome=DeliveryAttempt.Outcome.UNKNOWN)
        return backends.send_message(message, **kwargs)

    monkeypatch.setattr(services, "send_message", overrunning)


def test_a_try_that_lost_its_claim_records_its_outcome_and_leaves_the_delivery_to_its_new_holder(
    recording: str,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    taken_back_during_the_send(monkeypatch)
    # Read from the logger itself: another test's logging setup may have disabled it for handlers.
    warnings: list[str] = []
    monkeypatch.setattr(services.logger, "warning", lambda text, *args: warnings.append(text % args))
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery_send(delivery_id=delivery.pk).retry_in is None

    delivery.refresh_from_db()
    assert (delivery.state, delivery.sent_at, delivery.unknown_outcomes) == (Delivery.State.QUEUED, None, 1)
    assert delivery.report_format is None
    attempt = delivery.attempts.get()
    assert (attempt.outcome, attempt.finished_at is not None) == (DeliveryAttempt.Outcome.ACCEPTED, True)
    states = set(delivery.recipients.values_list("state", flat=True))
    assert states == {DeliveryRecipient.State.PENDING}  # the next try sends to them all
    assert warnings == [f"Delivery {delivery.pk}: try 1 finished after losing its claim"]


def test_the_one_statement_recording_touches_only_its_delivery(
    smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    other = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))

    delivery_send(delivery_id=delivery.pk)

    assert recorded(delivery) == EVERYONE_ACCEPTED
    other.refresh_from_db()
    assert (other.state, other.sent_at, other.attempts.count()) == (Delivery.State.QUEUED, None, 0)
    assert set(other.recipients.values_list("state", flat=True)) == {DeliveryRecipient.State.PENDING}


def test_a_try_reads_its_recipients_tries_and_notices_without_joining_the_deliveries(
    smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    delivery, statements = a_try_with_its_statements(emailing_store, customer_a, cashier_a)
    with CaptureQueriesContext(connection) as queries:
        recipients, _attempts, _notices = (
            list(delivery.recipients.all()),
            list(delivery.attempts.all()),
            list(delivery.notices.all()),
        )

    tables = ("mailer_deliveryrecipient", "mailer_deliveryattempt", "mailer_failurenotice")
    reads = [
        sql
        for sql in statements + [query["sql"] for query in queries.captured_queries]
        if sql.startswith("SELECT") and any(f'FROM "{table}"' in sql for table in tables)
    ]
    assert len(reads) == 4  # the try's read of its recipients, and the three above
    assert not [sql for sql in reads if "JOIN" in sql]
    roles = [r.role for r in recipients]
    assert roles == [DeliveryRecipient.Role.TO, DeliveryRecipient.Role.COPY, DeliveryRecipient.Role.COPY]


def test_a_workers_next_email_compiles_none_of_its_reads(
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
    compiled_sql: list[str],
) -> None:
    """The reads of the delivery (with its invoice, customer, store and reports), of its
    recipients, of the default report and of the invoice's lines are compiled by the first
    email of a connection only; the next email runs the same SQL with its own ids."""

    def reads(statements: list[str]) -> dict[str, list[str]]:
        return {
            "delivery": [s for s in statements if 'FROM "mailer_delivery"' in s and '"invoices_customer"' in s],
            "recipients": [s for s in statements if s.startswith("SELECT") and 'FROM "mailer_deliveryrecipient"' in s],
            "default report": [s for s in statements if s.startswith("SELECT") and 'FROM "invoices_reportformat"' in s],
            "lines": [s for s in statements if s.startswith("SELECT") and 'FROM "invoices_invoiceline"' in s],
        }

    _first, _statements = a_try_with_its_statements(emailing_store, customer_a, cashier_a)
    compiled_sql.clear()
    second, statements = a_try_with_its_statements(emailing_store, customer_a, cashier_a)

    ran = reads(statements)
    assert all(len(ran[read]) == 1 for read in ran), ran  # each read ran once…
    assert reads(compiled_sql) == {"delivery": [], "recipients": [], "default report": [], "lines": []}  # …none again
    assert recorded(second) == EVERYONE_ACCEPTED
    assert str(second.pk) in ran["delivery"][0] and str(second.pk) in ran["recipients"][0]
    assert second.invoice_id is not None and str(second.invoice_id) in ran["lines"][0]
