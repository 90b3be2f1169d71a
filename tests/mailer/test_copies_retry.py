"""A copy the mail server refuses for now (4xx) is tried again on its own once the customer has
the email, until the retry window ends; the delivery is sent meanwhile, and the store is told
only when a copy is refused for good.

The tries are run here one by one, as the worker's task runs them, so each state in between
can be looked at; the last test lets a real worker run them all."""

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings

from accounts.models import User
from invoices.models import Customer
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient
from mailer.services import deliveries_sweep, delivery_send
from stores.models import Store
from tests.conftest import client_for
from tests.mailer.test_delivery import (
    CONTACTS,
    COPIES,
    CUSTOMER,
    RefuseTimes,
    apply_invoice,
    delivery_of,
    emailing_store,
    finished,
    messages_to,
    pdf_attachment,
    short_retries,
)
from tests.smtp import Refusal, SMTPTestServer

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["emailing_store", "short_retries"]  # fixtures shared with test_delivery

BUSY = Refusal(451, "4.2.1 Mailbox busy, try again later")
BUSY_COPY = COPIES[1]


@pytest.fixture
def later_retries(settings: Settings) -> None:
    """Retries far enough apart that each try below runs only when the test makes it due."""
    settings.MAILER_RETRY_BASE_SECONDS = 30.0
    settings.MAILER_RETRY_MAX_DELAY_SECONDS = 60.0


def recipient_states(delivery: Delivery) -> dict[str, tuple[str, int | None]]:
    return {r.address: (r.state, r.smtp_code) for r in delivery.recipients.all()}


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_copy_refused_for_now_is_tried_again_on_its_own_while_the_delivery_shows_as_sent(
    later_retries: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.behaviour.refused = RefuseTimes(BUSY_COPY, BUSY, 1)
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))

    first = delivery_send(delivery_id=delivery.pk)

    # The customer has the email: the delivery is sent, with the copy's next try planned.
    assert first.retry_in is not None and first.retry_in > 0
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SENT
    assert delivery.sent_at is not None
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > delivery.sent_at
    assert recipient_states(delivery) == {
        CUSTOMER: ("sent", None),
        COPIES[0]: ("sent", None),
        BUSY_COPY: ("deferred", 451),
    }
    assert list(delivery.attempts.values_list("number", "outcome")) == [(1, DeliveryAttempt.Outcome.ACCEPTED)]
    assert not delivery.notices.exists()  # nothing to tell the store yet
    (to_customer,) = smtp_server.messages
    assert to_customer.envelope_recipients == [CUSTOMER, COPIES[0]]
    # The store's page says so, in Spanish.
    panel = client_for(cashier_a).get(reverse("mailer:invoice_email_panel", args=[delivery.invoice_id]))
    html = panel.content.decode()
    assert 'data-state="sent"' in html
    assert "Próximo intento de las copias" in html

    # A task that comes early is told when to come back, and sends nothing.
    early = delivery_send(delivery_id=delivery.pk)
    assert early.retry_in is not None and early.retry_in > 0
    assert len(smtp_server.messages) == 1

    make_due(delivery)
    second = delivery_send(delivery_id=delivery.pk)

    assert second.retry_in is None
    # The same message, to the waiting copy alone, still addressed to the customer.
    copy_message = smtp_server.messages[1]
    assert copy_message.envelope_recipients == [BUSY_COPY]
    assert copy_message.header_addresses("To") == [CUSTOMER]
    assert copy_message.message["Message-ID"] == to_customer.message["Message-ID"]
    assert pdf_attachment(copy_message) == pdf_attachment(to_customer)
    row = Delivery.objects.values_list("state", "sent_at", "next_attempt_at").get(pk=delivery.pk)
    assert row == (Delivery.State.SENT, delivery.sent_at, None)
    assert recipient_states(delivery)[BUSY_COPY] == ("sent", None)
    assert list(delivery.attempts.values_list("number", "outcome")) == [
        (1, DeliveryAttempt.Outcome.ACCEPTED),
        (2, DeliveryAttempt.Outcome.ACCEPTED),
    ]
    assert not delivery.notices.exists()
    assert len(messages_to(smtp_server, CUSTOMER)) == 1


def test_a_copy_still_refused_when_the_retry_window_ends_is_refused_for_good_and_the_store_told(
    later_retries: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.refuse(BUSY_COPY, BUSY.code, BUSY.text)
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    assert delivery_send(delivery_id=delivery.pk).retry_in is not None

    # A second try, a day later, still refused: the window (a minute here) is over.
    DeliveryAttempt.objects.filter(delivery=delivery).update(started_at=timezone.now() - timedelta(days=1))
    make_due(delivery)
    assert delivery_send(delivery_id=delivery.pk).retry_in is None

    delivery.refresh_from_db()
    assert (delivery.state, delivery.next_attempt_at, delivery.failure_kind) == (Delivery.State.SENT, None, "")
    assert recipient_states(delivery)[BUSY_COPY] == ("failed", 451)
    assert list(delivery.attempts.values_list("number", "outcome", "smtp_code")) == [
        (1, DeliveryAttempt.Outcome.ACCEPTED, None),
        (2, DeliveryAttempt.Outcome.DEFERRED, 451),
    ]
    # The store's failure contacts are told which copy and what the server said, once.
    assert sorted(delivery.notices.values_list("address", "state")) == sorted((a, "sent") for a in CONTACTS)
    for address in CONTACTS:
        (notice,) = messages_to(smtp_server, address)
        assert BUSY_COPY in notice.text
        assert "451 4.2.1 Mailbox busy" in notice.text
    assert len(messages_to(smtp_server, CUSTOMER)) == 1


def test_a_copy_refused_for_good_on_its_own_try_is_not_tried_again(
    later_retries: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.behaviour.refused = RefuseTimes(BUSY_COPY, BUSY, 1)
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    delivery_send(delivery_id=delivery.pk)

    smtp_server.behaviour.refused = {}
    smtp_server.refuse(BUSY_COPY, 550, "5.1.1 Mailbox unavailable")
    make_due(delivery)
    assert delivery_send(delivery_id=delivery.pk).retry_in is None

    delivery.refresh_from_db()
    assert (delivery.state, delivery.next_attempt_at) == (Delivery.State.SENT, None)
    assert recipient_states(delivery)[BUSY_COPY] == ("failed", 550)
    assert delivery.attempts.get(number=2).outcome == DeliveryAttempt.Outcome.REJECTED
    assert sorted(delivery.notices.values_list("address", flat=True)) == sorted(CONTACTS)


def test_the_sweeper_finds_copies_whose_task_was_lost_or_whose_worker_died_and_leaves_the_delivery_sent(
    later_retries: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.behaviour.refused = RefuseTimes(BUSY_COPY, BUSY, 2)
    lost = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    dead = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    for delivery in (lost, dead):
        delivery_send(delivery_id=delivery.pk)
    now = timezone.now()
    # The copies' task of one was lost: due 5 minutes ago. The other's worker died during its
    # copies' try, claimed 20 minutes ago.
    Delivery.objects.filter(pk=lost.pk).update(next_attempt_at=now - timedelta(minutes=5))
    Delivery.objects.filter(pk=dead.pk).update(
        state=Delivery.State.SENDING, claimed_at=now - timedelta(minutes=20), attempt_count=2
    )
    DeliveryAttempt.objects.create(delivery=dead, number=2, started_at=now - timedelta(minutes=20))

    result = deliveries_sweep(now=now)

    assert sorted(result.requeued) == sorted([lost.pk, dead.pk])
    assert result.reset == 1
    for delivery in (lost, dead):
        delivery.refresh_from_db()
        assert (delivery.state, delivery.next_attempt_at) == (Delivery.State.SENT, now)
    assert dead.attempts.get(number=2).outcome == DeliveryAttempt.Outcome.UNKNOWN

    # Their tasks, queued again, send to the copies.
    for delivery in (lost, dead):
        assert delivery_send(delivery_id=delivery.pk).retry_in is None
        delivery.refresh_from_db()
        assert (delivery.state, delivery.next_attempt_at) == (Delivery.State.SENT, None)
        assert recipient_states(delivery)[BUSY_COPY] == ("sent", None)
    assert len(messages_to(smtp_server, CUSTOMER)) == 2


def test_a_worker_tries_a_busy_copy_again_until_the_server_takes_it(
    celery_worker: Any, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    smtp_server.behaviour.refused = RefuseTimes(BUSY_COPY, BUSY, 2)

    delivery = finished(apply_invoice(emailing_store, customer_a, cashier_a))

    assert delivery.state == Delivery.State.SENT
    assert list(delivery.attempts.values_list("number", "outcome", "smtp_code")) == [
        (1, DeliveryAttempt.Outcome.ACCEPTED, None),
        (2, DeliveryAttempt.Outcome.DEFERRED, 451),
        (3, DeliveryAttempt.Outcome.ACCEPTED, None),
    ]
    assert set(delivery.recipients.values_list("state", flat=True)) == {DeliveryRecipient.State.SENT}
    assert [len(messages_to(smtp_server, address)) for address in (CUSTOMER, *COPIES)] == [1, 1, 1]
    assert not delivery.notices.exists()
    # The delivery was sent from the first try on.
    first_try_end = delivery.attempts.get(number=1).finished_at
    assert delivery.sent_at is not None and first_try_end is not None
    assert delivery.sent_at <= first_try_end
