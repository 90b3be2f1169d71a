"""Shared fixtures: the named actors of every tenancy test, and the real services.

The suite runs against PostgreSQL and Redis (DATABASE_URL / REDIS_URL, 127.0.0.1 by
default) and stops at once, in one line, when either cannot be reached.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from django.conf import settings
from django.test import Client
from pytest_django import Settings

from accounts.models import Business, User
from invoices.models import Customer
from stores.models import Store
from tests.smtp import SMTPTestServer

# Playwright's sync API runs an event loop in the test thread; the ORM calls that tests
# make around it are ordinary synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PROJECT_DIR = Path(__file__).resolve().parent.parent
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


def _database_description() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        return f"PostgreSQL at {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} ({db['NAME']})"


def pytest_configure(config: pytest.Config) -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        try:
            psycopg.connect(
                host=db.get("HOST") or "127.0.0.1",
                port=int(db.get("PORT") or 5432),
                user=db.get("USER") or "postgres",
                password=db.get("PASSWORD") or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0]
            pytest.exit(
                f"{_database_description()} is unreachable ({reason}); start it with: {START_POSTGRES}",
                returncode=3,
            )
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.exit(
            f"Redis at {urlsplit(settings.REDIS_URL).netloc} is unreachable ({exc}); start it with: {START_REDIS}",
            returncode=3,
        )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"database: {_database_description()}; broker and cache: Redis at {urlsplit(settings.REDIS_URL).netloc}"]


# --- The named actors -------------------------------------------------------------------


@pytest.fixture
def business_a(db: None) -> Business:
    return Business.objects.create(name="Comercial A", legal_id="3-101-111111")


@pytest.fixture
def business_b(db: None) -> Business:
    return Business.objects.create(name="Comercial B", legal_id="3-101-222222")


@pytest.fixture
def store_a(business_a: Business) -> Store:
    return Store.objects.create(business=business_a, name="Tienda A1", legal_id="3-101-111111", email="a1@a.example")


@pytest.fixture
def store_a2(business_a: Business) -> Store:
    return Store.objects.create(business=business_a, name="Tienda A2", legal_id="3-101-111111", email="a2@a.example")


@pytest.fixture
def store_b(business_b: Business) -> Store:
    return Store.objects.create(business=business_b, name="Tienda B1", legal_id="3-101-222222", email="b1@b.example")


def _user(username: str, **fields: Any) -> User:
    return User.objects.create_user(
        username=username, password="secret-pass-123", email=f"{username}@example.com", **fields
    )


@pytest.fixture
def admin_a(business_a: Business) -> User:
    """Store admin of business A."""
    return _user("admin_a", business=business_a, role=User.Role.STORE_ADMIN)


@pytest.fixture
def cashier_a(business_a: Business, store_a: Store) -> User:
    """Cashier of business A, assigned to store A1 only."""
    user = _user("cashier_a", business=business_a, role=User.Role.CASHIER)
    user.stores.add(store_a)
    return user


@pytest.fixture
def admin_b(business_b: Business) -> User:
    """Store admin of another business."""
    return _user("admin_b", business=business_b, role=User.Role.STORE_ADMIN)


@pytest.fixture
def support(db: None) -> User:
    """FinanzaPro support staff: sees every business."""
    return _user("support", is_staff=True, is_superuser=True)


@pytest.fixture
def customer_a(business_a: Business) -> Customer:
    return Customer.objects.create(
        business=business_a, name="Cliente A", emails="cliente@a.example", send_invoices_by_email=True
    )


@pytest.fixture
def customer_b(business_b: Business) -> Customer:
    return Customer.objects.create(business=business_b, name="Cliente B", emails="cliente@b.example")


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def screenshots_dir() -> Iterator[Path]:
    path = PROJECT_DIR / "var" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    yield path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium: Playwright cannot download its own here."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "locale": "es-CR", "viewport": {"width": 1280, "height": 800}}


# --- The ORM --------------------------------------------------------------------------------


@pytest.fixture
def compiled_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every query the ORM compiles from now on (Django's compiler, observed)."""
    from django.db.models.sql.compiler import SQLCompiler

    compiled: list[str] = []
    as_sql = SQLCompiler.as_sql

    def observed(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        sql, params = as_sql(self, *args, **kwargs)
        compiled.append(sql)
        return sql, params

    monkeypatch.setattr(SQLCompiler, "as_sql", observed)
    return compiled


# --- Cache and mail ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Every test starts with an empty cache: rate-limit counters must not leak between tests.

    In tests the cache has a Redis database of its own (see CACHES in settings), so this
    never touches the broker's queues.
    """
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def smtp_server(settings: Settings) -> Iterator[SMTPTestServer]:
    """A real SMTP server (tests/smtp.py) that the default mailer sends to, timing out after 2 s."""
    server = SMTPTestServer()
    server.start()
    settings.MAILERS = {**settings.MAILERS, "default": server.mailer()}
    try:
        yield server
    finally:
        server.stop()


# --- Invoice emails: a real Celery worker on Redis -----------------------------------------


def broker_queue_length() -> int:
    """Task messages waiting in the broker's default queue (kombu keeps one Redis list per
    priority step, all named after the queue)."""
    import redis as redis_client

    from finanzapro.celery import app

    client = redis_client.Redis.from_url(app.conf.broker_url)
    queue = app.conf.task_default_queue
    return sum(int(client.llen(key)) for key in client.scan_iter(match=f"{queue}*") if client.type(key) == b"list")


@pytest.fixture
def empty_broker(transactional_db: None) -> None:
    """No task message of an earlier test (whose delivery ids may be reused) is left waiting."""
    from finanzapro.celery import app

    app.control.purge()


@pytest.fixture
def celery_worker(empty_broker: None) -> Iterator[Any]:
    """A real Celery worker consuming from Redis in this process (its own thread and database
    connection), so it sees the test's settings: the SMTP server, short retry delays."""
    from celery.contrib.testing.worker import start_worker

    from finanzapro.celery import app
    from mailer.backends import keep_connections_open

    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
            yield worker
    finally:
        # The solo pool sent worker_process_init to this process, as a worker process's start:
        # the tests after this one send as web requests do, a connection per email.
        keep_connections_open(False)


@pytest.fixture
def built_in_report_formats(transactional_db: None) -> None:
    """The report formats of the data migration, back in the tables that an earlier
    transactional test emptied (the worker renders PDFs with the default one)."""
    import importlib

    from invoices.models import ReportFormat

    migration = importlib.import_module("invoices.migrations.0003_builtin_report_formats")
    for row in migration.BUILT_IN:
        ReportFormat.objects.update_or_create(code=row["code"], defaults=row)


# --- Invoice emails: `celery worker` subprocesses, as production runs them -----------------


class WorkerProcess:
    """``celery -A finanzapro worker --pool=prefork`` in a process group of its own, on the test
    database, Redis and SMTP server (all on 127.0.0.1); its output goes to ``log_path``."""

    def __init__(self, name: str, *, env: dict[str, str], log_path: Path, concurrency: int) -> None:
        import subprocess
        import sys

        self.name, self.log_path = name, log_path
        self.killed = False  # SIGKILLed (by the test or at the end): it may have left tasks unacknowledged
        command = [sys.executable, "-m", "celery", "-A", "finanzapro", "worker", "--pool=prefork"]
        command += [f"--concurrency={concurrency}", "--loglevel=INFO", "--hostname", name]
        # No waiting for other workers' replies at start-up, and nothing shared with them.
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the prefork children are killed with it
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[int]:
        """The pool's processes (Linux: /proc; a replacement may be forked by another thread)."""
        pids: list[int] = []
        for listing in Path(f"/proc/{self.pid}/task").glob("*/children"):
            try:
                pids.extend(int(pid) for pid in listing.read_text().split())
            except OSError:  # the thread or the worker is gone
                continue
        return pids

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- worker {self.name} (pid {self.pid}), last lines of its log ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def kill(self) -> None:
        """SIGKILL the whole worker, pool included, as a machine or container dying would."""
        import contextlib
        import signal

        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM: finish and acknowledge the tasks in hand), then SIGKILL to
        whatever is left of the group. Bounded by ``timeout`` seconds and then 10 more."""
        import contextlib
        import signal
        import subprocess

        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # the group outlives a leader that died alone
        self.process.wait(timeout=10)


class WorkerProcesses:
    """Starts worker subprocesses for one test and stops every one of them afterwards."""

    LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

    def __init__(self, *, smtp: SMTPTestServer, log_dir: Path) -> None:
        self.smtp, self.log_dir = smtp, log_dir
        self.started: list[WorkerProcess] = []

    def environment(self, **overrides: str) -> dict[str, str]:
        """This process's environment without the project's settings, plus the test database
        (the ``test_`` one Django created), Redis, the SMTP server and ``overrides``."""
        from urllib.parse import quote

        from django.db import connection

        db = connection.settings_dict
        assert db["ENGINE"] == "django.db.backends.postgresql", "worker subprocesses need the PostgreSQL test database"
        host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
        credentials = quote(str(db.get("USER") or "postgres"), safe="")
        if db.get("PASSWORD"):
            credentials += ":" + quote(str(db["PASSWORD"]), safe="")
        database_url = f"postgres://{credentials}@{host}:{port}/{quote(str(db['NAME']), safe='')}"
        for url in (settings.REDIS_URL, settings.CELERY_BROKER_URL, database_url):
            assert urlsplit(url).hostname in self.LOCAL_HOSTS, f"a test worker talks only to 127.0.0.1, not {url}"
        own = ("DJANGO_", "DATABASE_", "CELERY_", "PYTEST_", "MAILER_", "EMAIL_", "REDIS_URL", "CACHE_URL")
        env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
        return {
            **env,
            "DJANGO_SETTINGS_MODULE": "finanzapro.settings",
            "DJANGO_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "EMAIL_URL": f"smtp://{self.smtp.host}:{self.smtp.port}",
            "PYTHONUNBUFFERED": "1",
            **overrides,
        }

    def start(self, label: str = "worker", *, concurrency: int = 2, **env: str) -> WorkerProcess:
        """A new worker; ``env`` sets its settings (``EMAIL_TIMEOUT="10"``…). Start-up takes
        a few seconds; tasks queued meanwhile wait in Redis."""
        import uuid

        name = f"{label}-{uuid.uuid4().hex[:8]}@localhost"
        worker = WorkerProcess(
            name,
            env=self.environment(**env),
            log_path=self.log_dir / f"{label}-{len(self.started) + 1}.log",
            concurrency=concurrency,
        )
        self.started.append(worker)
        return worker

    def check_alive(self) -> None:
        """Fail at once, with its log, if a worker that was not killed on purpose has died."""
        for worker in self.started:
            if not worker.killed and not worker.alive():
                code = worker.process.returncode
                raise AssertionError(f"worker {worker.name} exited with {code}\n{worker.log_tail()}")

    def logs(self) -> str:
        return "\n".join(worker.log_tail() for worker in self.started)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def worker_processes(empty_broker: None, smtp_server: SMTPTestServer, tmp_path: Path) -> Iterator[WorkerProcesses]:
    """Real ``celery worker`` subprocesses (prefork, as in production) on the test database,
    Redis and ``smtp_server``. Settings the test overrides in its own process do not reach
    them: pass them as environment variables to ``start()``. Every worker is stopped after
    the test, and the task messages a SIGKILLed worker left unacknowledged in Redis are
    dropped (Redis would hand them out again only after the visibility timeout)."""
    workers = WorkerProcesses(smtp=smtp_server, log_dir=tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()
        if any(worker.killed for worker in workers.started):
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
            client.delete("unacked", "unacked_index")
