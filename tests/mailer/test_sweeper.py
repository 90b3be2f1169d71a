"""The sweeper finds, from PostgreSQL, the invoice emails that the broker lost or a dead worker
left half done, and a real worker finishes them."""

from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone
from kombu.exceptions import OperationalError
from pytest_django import Settings

from accounts.models import User
from finanzapro.celery import app
from invoices.models import Customer, Invoice
from mailer.models import Delivery, DeliveryAttempt, FailureNotice
from mailer.services import deliveries_sweep
from mailer.tasks import deliver_invoice_email, sweep_stuck_deliveries
from stores.models import Store
from tests.conftest import broker_queue_length
from tests.mailer.test_delivery import (
    APPLYING_USER,
    CONTACTS,
    CUSTOMER,
    apply_invoice,
    delivery_of,
    emailing_store,
    finished,
    messages_to,
    short_retries,
    tasks_run,
)
from tests.smtp import SMTPTestServer

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["emailing_store", "short_retries"]  # fixtures shared with test_delivery


def lost(invoice: Invoice, *, due_ago: timedelta) -> Delivery:
    """The invoice's delivery, queued, due ``due_ago`` ago, its task message gone from the broker."""
    app.control.purge()
    Delivery.objects.filter(invoice=invoice).update(next_attempt_at=timezone.now() - due_ago)
    return delivery_of(invoice)


def left_sending(invoice: Invoice, *, claimed_ago: timedelta, first_try_ago: timedelta | None = None) -> Delivery:
    """The invoice's delivery as a worker killed during the SMTP conversation leaves it: claimed
    ``claimed_ago``, its try written "in progress" and never finished; no message in the broker."""
    app.control.purge()
    now = timezone.now()
    delivery = delivery_of(invoice)
    Delivery.objects.filter(pk=delivery.pk).update(
        state=Delivery.State.SENDING, claimed_at=now - claimed_ago, attempt_count=1
    )
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=now - (first_try_ago or claimed_ago))
    delivery.refresh_from_db()
    return delivery


def test_the_sweeper_runs_every_minute() -> None:
    (entry,) = [entry for entry in app.conf.beat_schedule.values() if entry["task"] == "mailer.sweep_stuck_deliveries"]
    assert entry["schedule"] == 60.0
    assert entry["options"]["expires"] < 60  # sweeps that piled up while no worker ran are dropped


def test_a_queued_delivery_whose_task_message_was_lost_is_queued_again_and_sent(
    empty_broker: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    overdue = lost(apply_invoice(emailing_store, customer_a, cashier_a), due_ago=timedelta(minutes=3))
    recent = lost(apply_invoice(emailing_store, customer_a, cashier_a), due_ago=timedelta(seconds=30))
    assert broker_queue_length() == 0

    sweep_stuck_deliveries.delay()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        delivery = finished(overdue.invoice)
        tasks_run(1, "mailer.sweep_stuck_deliveries")

    assert delivery.state == Delivery.State.SENT
    assert delivery.unknown_outcomes == 0
    assert list(delivery.attempts.values_list("outcome", flat=True)) == ["accepted"]
    assert len(messages_to(smtp_server, CUSTOMER)) == 1
    # The recent one may still be on its way in a busy queue: left alone until the threshold.
    recent_now = Delivery.objects.get(pk=recent.pk)
    assert (recent_now.state, recent_now.next_attempt_at) == (Delivery.State.QUEUED, recent.next_attempt_at)


def test_the_sweeper_queues_a_lost_delivery_again_only_once_per_threshold(
    empty_broker: None, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    overdue = lost(apply_invoice(emailing_store, customer_a, cashier_a), due_ago=timedelta(minutes=3))

    assert deliveries_sweep().requeued == (overdue.pk,)
    # Due now rather than overdue: a busy queue does not get a new copy every minute.
    assert deliveries_sweep().requeued == ()
    later = timezone.now() + timedelta(minutes=3)
    assert deliveries_sweep(now=later).requeued == (overdue.pk,)
    assert broker_queue_length() == 0  # the service only says what to queue; its task queues it


def test_a_delivery_left_sending_by_a_dead_worker_is_taken_back_and_sent(
    celery_worker: Any,
    settings: Settings,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    settings.MAILER_RETRY_WINDOW_SECONDS = 3600
    stuck = left_sending(apply_invoice(emailing_store, customer_a, cashier_a), claimed_ago=timedelta(minutes=10))

    sweep_stuck_deliveries.delay()
    delivery = finished(stuck.invoice)

    assert delivery.state == Delivery.State.SENT
    # The first try's outcome is unknown (the server may have taken it before the worker
    # died); it is counted, and the second message carries the same Message-ID.
    attempts = list(delivery.attempts.values_list("number", "outcome"))
    assert attempts == [(1, "unknown"), (2, "accepted")]
    assert delivery.unknown_outcomes == 1
    (received,) = messages_to(smtp_server, CUSTOMER)
    assert received.message["Message-ID"] == delivery.message_id


def test_a_delivery_sending_for_less_than_the_threshold_is_left_to_its_worker(
    empty_broker: None, settings: Settings, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    threshold = timedelta(seconds=settings.MAILER_SWEEP_SENDING_AFTER_SECONDS)
    assert threshold > timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)  # so its worker is surely dead
    busy = left_sending(apply_invoice(emailing_store, customer_a, cashier_a), claimed_ago=threshold / 2)

    result = deliveries_sweep()

    assert result.requeued == ()
    busy_now = Delivery.objects.get(pk=busy.pk)
    assert (busy_now.state, busy_now.claimed_at) == (Delivery.State.SENDING, busy.claimed_at)
    assert busy_now.attempts.get().outcome == DeliveryAttempt.Outcome.IN_PROGRESS


def test_a_stuck_delivery_past_the_retry_window_fails_and_the_store_is_told(
    celery_worker: Any,
    settings: Settings,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    settings.MAILER_RETRY_WINDOW_SECONDS = 3600
    stuck = left_sending(
        apply_invoice(emailing_store, customer_a, cashier_a),
        claimed_ago=timedelta(minutes=10),
        first_try_ago=timedelta(hours=2),
    )

    sweep_stuck_deliveries.delay()
    delivery = finished(stuck.invoice)

    assert delivery.state == Delivery.State.FAILED
    assert delivery.failure_kind == Delivery.FailureKind.GAVE_UP
    assert delivery.unknown_outcomes == 1
    assert messages_to(smtp_server, CUSTOMER) == []
    assert sorted(delivery.notices.values_list("address", "state")) == sorted(
        [(APPLYING_USER, "sent"), *[(address, "sent") for address in CONTACTS]]
    )
    for address in (APPLYING_USER, *CONTACTS):
        assert len(messages_to(smtp_server, address)) == 1


def test_notices_left_pending_are_sent_once_and_those_left_sending_are_never_sent_again(
    empty_broker: None, smtp_server: SMTPTestServer, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    # A delivery that failed, whose worker died while telling the store: one notice never
    # claimed, one claimed and perhaps sent.
    delivery = delivery_of(apply_invoice(emailing_store, customer_a, cashier_a))
    app.control.purge()
    long_ago = timezone.now() - timedelta(minutes=10)
    Delivery.objects.filter(pk=delivery.pk).update(
        state=Delivery.State.FAILED, failed_at=long_ago, failure_kind="rejected", failure_detail="550 5.1.1 Unknown"
    )
    pending = FailureNotice.objects.create(delivery=delivery, address=CONTACTS[0])
    sending = FailureNotice.objects.create(delivery=delivery, address=CONTACTS[1], state="sending", claimed_at=long_ago)
    FailureNotice.objects.filter(pk=pending.pk).update(created_at=long_ago)

    sweep_stuck_deliveries.delay()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        tasks_run(1, "mailer.send_delivery_notices")

    pending.refresh_from_db()
    sending.refresh_from_db()
    assert pending.state == FailureNotice.State.SENT
    (notice,) = messages_to(smtp_server, CONTACTS[0])
    assert "550 5.1.1 Unknown" in notice.text
    assert (sending.state, sending.error) == ("failed", "The worker sending it stopped; not sent again.")
    assert messages_to(smtp_server, CONTACTS[1]) == []
    assert messages_to(smtp_server, CUSTOMER) == []


def test_an_invoice_applied_while_the_broker_is_down_is_applied_and_its_email_sent_later(
    empty_broker: None,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(deliver_invoice_email, "apply_async", broker_down)
    invoice = apply_invoice(emailing_store, customer_a, cashier_a)  # does not fail

    assert invoice.status == Invoice.Status.APPLIED
    assert delivery_of(invoice).state == Delivery.State.QUEUED
    monkeypatch.undo()  # Redis is back
    Delivery.objects.filter(invoice=invoice).update(next_attempt_at=timezone.now() - timedelta(minutes=3))

    sweep_stuck_deliveries.delay()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        delivery = finished(invoice)

    assert delivery.state == Delivery.State.SENT
    assert len(messages_to(smtp_server, CUSTOMER)) == 1
