"""A worker killed (SIGKILL) in the middle of sending an invoice email: the email is finished by
another worker once the sweeper takes it back, and a message that may have gone twice is counted.

Made deterministic with the SMTP server's stalls (tests/smtp.py): the server holds the worker
at a known point of the conversation, the test sees it there (the server's stalled client,
the "in progress" try in the database), finds the pool process at the other end of that
connection and kills it. Two points matter:

- before the server's 250 (stalled before answering DATA): the server never took the message,
  so the customer gets exactly one, from the next try;
- after the server's 250 (stalled at QUIT): the server took it, the worker died before
  recording it, so the next try sends it again: two messages with the same Message-ID.

Either way nobody can know which it was, so the dead try is recorded as "unknown" and
``Delivery.unknown_outcomes`` counts it: at most that many duplicates.

The workers are real ``celery worker`` subprocesses (tests/conftest.py, ``worker_processes``)
with short time limits, so that the sweeper may take a delivery back after a few seconds.
Heavy on purpose (about 16 s each, mostly waiting for that threshold), and part of
``make test`` like every other test: never skip them.
"""

import os
import re
import signal
from collections.abc import Iterable
from pathlib import Path

import pytest
from pytest_django import Settings

from accounts.models import User
from invoices.models import Customer, Invoice
from mailer.models import Delivery
from mailer.tasks import sweep_stuck_deliveries
from stores.models import Store
from tests.conftest import WorkerProcess, WorkerProcesses
from tests.mailer.test_burst import until
from tests.mailer.test_delivery import COPIES, CUSTOMER, apply_invoice, emailing_store, messages_to
from tests.smtp import SMTPTestServer, StallPoint

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["emailing_store"]  # the fixture, shared with test_delivery

# The killed worker waits for the stalled server for up to EMAIL_TIMEOUT seconds: the kill
# comes long before. The hard time limit is longer than that, and the sweeper takes back a
# delivery "sending" for longer than the hard time limit (as in production: 30 s, 180 s, 240 s).
EMAIL_TIMEOUT = 6
SOFT_TIME_LIMIT = 7
TIME_LIMIT = 8
SWEEP_SENDING_AFTER = 9
# How the worker logs a run of the email task that ended (the task keeps no result row).
TASK_SUCCEEDED = re.compile(r"Task mailer\.deliver_invoice_email\[[^\]]+\] succeeded")
STALL = 120  # the server's silence, far longer than anything the test waits for
TIMEOUT = 60  # for each wait: a worker starting on a loaded machine, a render, a send
WORKER_ENV = {
    "EMAIL_TIMEOUT": str(EMAIL_TIMEOUT),
    "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_TIME_LIMIT),
    "CELERY_TASK_TIME_LIMIT": str(TIME_LIMIT),
    "MAILER_SWEEP_SENDING_AFTER_SECONDS": str(SWEEP_SENDING_AFTER),
}


@pytest.fixture(autouse=True)
def short_time_limits(settings: Settings) -> None:
    """The workers' limits (WORKER_ENV), for the sweeper that this process runs."""
    settings.CELERY_TASK_SOFT_TIME_LIMIT = SOFT_TIME_LIMIT
    settings.CELERY_TASK_TIME_LIMIT = TIME_LIMIT
    settings.MAILER_SWEEP_SENDING_AFTER_SECONDS = SWEEP_SENDING_AFTER
    assert SWEEP_SENDING_AFTER > TIME_LIMIT > EMAIL_TIMEOUT


def process_with_connection(pids: Iterable[int], *, local_port: int, remote_port: int) -> int | None:
    """Which of ``pids`` holds the TCP connection from ``local_port`` to ``remote_port`` on
    127.0.0.1 (Linux: the socket's inode in /proc/net/tcp, then the processes' descriptors)."""
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.rpartition(":")[2], 16) == local_port and int(remote.rpartition(":")[2], 16) == remote_port:
            sockets.add(f"socket:[{inode}]")
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in sockets:
                    return pid
            except OSError:
                continue
    return None


def stuck_in_smtp(
    workers: WorkerProcesses, worker: WorkerProcess, server: SMTPTestServer, invoice: Invoice
) -> tuple[Delivery, int]:
    """Wait until ``worker`` is held by the stalled server while sending ``invoice``'s email;
    return the delivery and the pool process that holds the connection."""
    (peer,) = until(workers, lambda: list(server.stalled_peers), timeout=TIMEOUT, what="the worker to reach the stall")
    pid = process_with_connection(worker.children(), local_port=peer[1], remote_port=server.port)
    assert pid is not None, f"no pool process of {worker.children()} holds the connection from {peer}"
    delivery = Delivery.objects.get(invoice=invoice)
    # Claimed, its try written before the conversation and still without an outcome.
    assert (delivery.state, delivery.attempt_count) == (Delivery.State.SENDING, 1)
    assert list(delivery.attempts.values_list("number", "outcome")) == [(1, "in_progress")]
    return delivery, pid


def swept_and_sent(workers: WorkerProcesses, delivery: Delivery) -> Delivery:
    """Run the sweeper (as beat does, every minute) until it takes the delivery back, once it
    has been "sending" for longer than the hard time limit; then wait for a worker to send it."""

    def taken_back() -> bool:
        result: dict[str, int] = sweep_stuck_deliveries()
        return result["reset"] == 1

    until(workers, taken_back, timeout=SWEEP_SENDING_AFTER + TIMEOUT, what="the sweeper to take the delivery back")
    until(
        workers,
        lambda: Delivery.objects.filter(pk=delivery.pk, state__in=["sent", "failed"]).exists(),
        timeout=TIMEOUT,
        what="the delivery to be finished",
    )
    delivery.refresh_from_db()
    return delivery


def assert_unknown_then_accepted(delivery: Delivery) -> None:
    assert (delivery.state, delivery.attempt_count) == (Delivery.State.SENT, 2)
    assert list(delivery.attempts.values_list("number", "outcome")) == [(1, "unknown"), (2, "accepted")]
    assert "may have taken the message" in delivery.attempts.get(number=1).detail
    assert delivery.unknown_outcomes == 1
    assert not delivery.notices.exists()


def start_stalled(
    workers: WorkerProcesses,
    server: SMTPTestServer,
    at: StallPoint,
    store: Store,
    customer: Customer,
    user: User,
    **env: str,
) -> tuple[WorkerProcess, Invoice]:
    server.stall(STALL, at=at)
    worker = workers.start("first", concurrency=2, **WORKER_ENV, **env)
    return worker, apply_invoice(store, customer, user)


def test_a_pool_process_killed_before_the_servers_250_leaves_one_message_sent_by_the_next_try(
    worker_processes: WorkerProcesses,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    worker, invoice = start_stalled(worker_processes, smtp_server, "data", emailing_store, customer_a, cashier_a)
    delivery, pid = stuck_in_smtp(worker_processes, worker, smtp_server, invoice)
    assert smtp_server.messages == []  # the whole message is there, unanswered: not taken

    # The kernel's OOM killer, say: the pool process dies, its worker lives on.
    os.kill(pid, signal.SIGKILL)
    smtp_server.stall(0)

    # The worker hands the task out again (task_reject_on_worker_lost); the claim turns the
    # second run away, since the delivery is still "sending": nothing is sent twice yet.
    until(
        worker_processes,
        lambda: TASK_SUCCEEDED.search(worker.log_path.read_text(errors="replace")),
        timeout=TIMEOUT,
        what="the task handed out again to run",
    )
    assert Delivery.objects.get(pk=delivery.pk).state == Delivery.State.SENDING
    assert smtp_server.messages == []

    delivery = swept_and_sent(worker_processes, delivery)

    assert worker.alive() and pid not in worker.children()
    assert_unknown_then_accepted(delivery)
    # One message: the unknown try was in fact refused. unknown_outcomes is an upper bound.
    (received,) = messages_to(smtp_server, CUSTOMER)
    assert received.message["Message-ID"] == delivery.message_id
    assert received.envelope_recipients == [CUSTOMER, *COPIES]
    assert len(smtp_server.messages) == 1


def test_a_worker_killed_after_the_servers_250_is_replaced_and_the_second_message_is_counted(
    worker_processes: WorkerProcesses,
    smtp_server: SMTPTestServer,
    emailing_store: Store,
    customer_a: Customer,
    cashier_a: User,
) -> None:
    # A worker that closes its connection after each email (a kept one says nothing after the
    # 250): the server stalls at its QUIT, after the 250, before the outcome is recorded.
    worker, invoice = start_stalled(
        worker_processes, smtp_server, "quit", emailing_store, customer_a, cashier_a, MAILER_SMTP_KEEP_OPEN_SECONDS="0"
    )
    delivery, _ = stuck_in_smtp(worker_processes, worker, smtp_server, invoice)
    # The server answered 250: the customer has the message, the database does not know yet.
    (first,) = smtp_server.messages
    assert first.message["Message-ID"] == delivery.message_id

    # The machine dies: the whole worker, pool and all. Its task message stays unacknowledged.
    worker.kill()
    smtp_server.stall(0)
    assert not worker.alive()
    second = worker_processes.start("second", concurrency=2, **WORKER_ENV)

    delivery = swept_and_sent(worker_processes, delivery)

    assert second.alive()
    assert_unknown_then_accepted(delivery)
    # Two messages, the same one twice, and counted: unknown_outcomes == the duplicates.
    received = messages_to(smtp_server, CUSTOMER)
    assert len(received) == 1 + delivery.unknown_outcomes == 2
    assert {message.message["Message-ID"] for message in received} == {delivery.message_id}
    assert all(message.envelope_recipients == [CUSTOMER, *COPIES] for message in received)
    assert len(smtp_server.messages) == 2
