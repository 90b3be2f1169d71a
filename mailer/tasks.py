"""The mailer's Celery tasks: each takes ids and calls a service (mailer/services.py).

A task message is only a nudge: the delivery rows in PostgreSQL say what is left to do, so
a lost message is found again by the sweeper and a duplicate one is a no-op at the claim.
"""

import logging

from celery import shared_task
from django.conf import settings

from mailer.services import deliveries_sweep, delivery_notices_send, delivery_send

logger = logging.getLogger(__name__)


def enqueue_delivery(delivery_id: int, countdown: float = 0) -> None:
    """Queue delivery ``delivery_id``'s task, at most MAILER_RETRY_MAX_DELAY_SECONDS from now
    (shorter than Redis's visibility timeout, after which a waiting task would be handed to
    a second worker; a task cut short finds its delivery not yet due and queues itself again).

    Best effort: when the broker cannot be reached the row stays ``queued`` and the sweeper
    queues it again, so this logs instead of failing the caller (an invoice being applied).
    """
    countdown = max(0.0, min(countdown, float(settings.MAILER_RETRY_MAX_DELAY_SECONDS)))
    try:
        deliver_invoice_email.apply_async((delivery_id,), countdown=countdown)
    except Exception:  # any broker or network error: the sweeper is the fallback
        logger.exception("Could not queue delivery %s; the sweeper will queue it again", delivery_id)


# No task result row for a run that ends normally: the delivery's rows (its tries, each
# recipient's answer) are that run's history, on the store's Correos page and in the admin.
# Storing it again cost each email a SELECT and an INSERT in django_celery_results, 2 ms of
# the pool process's CPU and 0.7 ms of the worker's main process's. A run that raises is
# still stored, so the admin's task results list the errors.
@shared_task(name="mailer.deliver_invoice_email", ignore_result=True, store_errors_even_if_ignored=True)
def deliver_invoice_email(delivery_id: int) -> None:
    """One try at an invoice email; queues the next try when the service says when."""
    outcome = delivery_send(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        enqueue_delivery(delivery_id, countdown=outcome.retry_in)


@shared_task(name="mailer.send_delivery_notices")
def send_delivery_notices(delivery_id: int) -> int:
    """Sends a delivery's failure notices that are still pending (the sweeper's fallback)."""
    return delivery_notices_send(delivery_id=delivery_id)


@shared_task(name="mailer.sweep_stuck_deliveries")
def sweep_stuck_deliveries() -> dict[str, int]:
    """Every minute (CELERY_BEAT_SCHEDULE): queue again what the broker lost or a dead worker left."""
    result = deliveries_sweep()
    for delivery_id in result.requeued:
        enqueue_delivery(delivery_id)
    for delivery_id in result.notices:
        try:
            send_delivery_notices.delay(delivery_id)
        except Exception:  # the next sweep tries again
            logger.exception("Could not queue the notices of delivery %s", delivery_id)
    return {"requeued": len(result.requeued), "reset": result.reset, "failed": result.failed}
