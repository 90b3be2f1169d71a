"""/health/ for monitoring: every service the product needs, each named, and a stopped one is an error."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.test import Client

from tests.smtp import SMTPTestServer

pytestmark = pytest.mark.django_db(transaction=True)


def health() -> tuple[int, dict[str, str]]:
    # On a thread of its own: the view runs its checks with async_to_sync, which refuses a
    # thread with an event loop, and the browser tests' Playwright keeps one in the main
    # thread for the rest of the session.
    with ThreadPoolExecutor(max_workers=1) as thread:
        response = thread.submit(Client().get, "/health/", {"format": "json"}).result()
    body: dict[str, str] = response.json()
    return response.status_code, body


def check(body: dict[str, str], name: str) -> str:
    """The result of the check whose report name starts with ``name``."""
    (result,) = [value for key, value in body.items() if key.startswith(name)]
    return result


def test_health_lists_every_service_and_all_answer(celery_worker: Any, smtp_server: SMTPTestServer) -> None:
    status, body = health()

    assert status == 200, body
    names = {key.split("(", 1)[0] for key in body}
    assert names == {"Database", "Cache", "Storage", "Ping", "Mail", "Redis"}
    assert set(body.values()) == {"OK"}


def test_a_stopped_smtp_server_is_reported_as_an_error(celery_worker: Any, smtp_server: SMTPTestServer) -> None:
    smtp_server.stop()

    status, body = health()

    assert status == 500
    assert check(body, "Mail") == "Unavailable: Connection refused error"
    assert {key.split("(", 1)[0] for key, value in body.items() if value != "OK"} == {"Mail"}


def test_no_worker_answering_is_reported_as_an_error(empty_broker: None, smtp_server: SMTPTestServer) -> None:
    status, body = health()

    assert status == 500
    assert check(body, "Ping") == "Unavailable: Celery workers unavailable"
    assert check(body, "Mail") == "OK"
