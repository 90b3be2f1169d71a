"""`make bench`, pages part: the invoice list, a store's Correos page and the invoice page,
at 100,000 applied invoices against the same pages at 1,000.

Two businesses live side by side in the bench database, each with one store, its store admin,
a few hundred customers and its applied invoices (1-3 lines each), every invoice with its
email delivery (mostly sent, some failed, the walk-in customer's skipped), recipients and
tries: business S with 1,000 invoices, business L with 100,000 (10,000 with ``--quick``).
The rows are written with PostgreSQL's COPY once and kept: a later run finds them and only
measures. Both sizes are requested in turn, request by request, with Django's test client
signed in as each store's admin (in process, DEBUG off), so a burst of load on this shared
machine hits both alike. Reported per page: p95 time at each size, their ratio (goal <= 2),
and the number of queries at each size (goal: the same).
"""

import argparse
import json
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import bench.env

# isort: split

from django.db import connection, models, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Business, User
from invoices.models import Customer, Invoice, InvoiceLine, InvoiceSequence
from mailer.models import Delivery, DeliveryAttempt, DeliveryRecipient
from stores.models import Store

SMALL = 1_000
LARGE = 100_000
LARGE_QUICK = 10_000
CUSTOMERS = 300
RATIO_GOAL = 2.0
PAGES = ("invoice_list", "store_deliveries", "invoice_detail")
TABLES = [Invoice, InvoiceLine, InvoiceSequence, Delivery, DeliveryRecipient, DeliveryAttempt]
PRODUCTS = [
    ("Café molido 500 g", Decimal(4500)),
    ("Azúcar 2 kg", Decimal(2100)),
    ("Arroz 1,8 kg", Decimal(1950)),
    ("Frijoles negros 900 g", Decimal(1600)),
    ("Aceite de girasol 1 l", Decimal(2750)),
    ("Leche entera 1 l", Decimal(950)),
    ("Pan cuadrado", Decimal(1400)),
    ("Huevos, docena", Decimal(2300)),
]
TAX = Decimal(13)
CENT = Decimal("0.01")


# --- The data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """One business of the benchmark: its store, its store admin and its invoice ids."""

    invoices: int
    store: Store
    admin: User
    invoice_ids: list[int]


def _legal_id(invoices: int) -> str:
    return f"BENCH-PAGES-{invoices}"


def _copy(model: type[models.Model], rows: Iterator[dict[str, Any]]) -> None:
    """Writes ``rows`` (by attribute name; the rest take the field's default) with COPY."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    defaults = {field.attname: field.get_default() for field in fields}
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[name] if name in row else defaults[name] for name in defaults])


def _lines(rng: random.Random) -> list[dict[str, Any]]:
    lines = []
    for position, (description, price) in enumerate(rng.sample(PRODUCTS, rng.randint(1, 3)), start=1):
        quantity = Decimal(rng.randint(1, 6))
        subtotal = quantity * price
        tax = (subtotal * TAX / 100).quantize(CENT)
        lines.append(
            {
                "position": position,
                "description": description,
                "quantity": quantity,
                "unit_price": price,
                "discount_percent": Decimal(0),
                "tax_rate": TAX,
                "subtotal": subtotal,
                "discount": Decimal(0),
                "tax": tax,
                "total": subtotal + tax,
            }
        )
    return lines


def _build(invoices: int) -> None:
    """One business with ``invoices`` applied invoices and their emails, in one transaction."""
    rng = random.Random(invoices)  # noqa: S311 - the same rows every time they are built
    business = Business.objects.create(name=f"Comercial de prueba {invoices}", legal_id=_legal_id(invoices))
    store = Store.objects.create(
        business=business,
        name="Tienda Central",
        legal_id=f"3-101-{invoices:06d}",
        email_enabled=True,
        reply_to="facturacion@tienda.example",
        copy_to="contabilidad@tienda.example",
    )
    admin = User.objects.create_user(
        username=f"bench-pages-admin-{invoices}", business=business, role=User.Role.STORE_ADMIN
    )
    walk_in = Customer.objects.create(business=business, name="Cliente contado", is_walk_in=True)
    customers = Customer.objects.bulk_create(
        Customer(
            business=business,
            name=f"Cliente {index:03d}",
            legal_id=f"1-{index:04d}-{invoices % 10_000:04d}",
            emails=f"cliente{index}@correo.example",
            send_invoices_by_email=index % 10 != 0,
        )
        for index in range(CUSTOMERS)
    )
    end = timezone.now().replace(microsecond=0)
    start = end - timedelta(days=365)
    step = (end - start) / invoices
    chosen = [walk_in if rng.random() < 0.1 else rng.choice(customers) for _ in range(invoices)]
    lines = [_lines(rng) for _ in range(invoices)]
    created = [start + step * number for number in range(1, invoices + 1)]

    def invoice_rows() -> Iterator[dict[str, Any]]:
        for number in range(1, invoices + 1):
            own = lines[number - 1]
            subtotal = sum((line["subtotal"] for line in own), Decimal(0))
            tax = sum((line["tax"] for line in own), Decimal(0))
            yield {
                "store_id": store.pk,
                "customer_id": chosen[number - 1].pk,
                "currency": store.currency,
                "number": number,
                "status": Invoice.Status.APPLIED,
                "subtotal": subtotal,
                "discount_total": Decimal(0),
                "tax_total": tax,
                "total": subtotal + tax,
                "created_by_id": admin.pk,
                "created_at": created[number - 1],
                "applied_by_id": admin.pk,
                "applied_at": created[number - 1] + timedelta(seconds=30),
            }

    _copy(Invoice, invoice_rows())
    InvoiceSequence.objects.create(store=store, last_number=invoices)
    ids = [pk for pk, _number in Invoice.objects.filter(store=store).order_by("number").values_list("pk", "number")]
    _copy(InvoiceLine, ({"invoice_id": pk, **line} for pk, own in zip(ids, lines, strict=True) for line in own))

    states: list[tuple[str, str]] = []
    for index in range(invoices):
        customer = chosen[index]
        if customer.is_walk_in:
            states.append((Delivery.State.SKIPPED, Delivery.SkipReason.WALK_IN))
        elif not customer.send_invoices_by_email:
            states.append((Delivery.State.SKIPPED, Delivery.SkipReason.OPTED_OUT))
        elif rng.random() < 0.04:
            states.append((Delivery.State.FAILED, ""))
        else:
            states.append((Delivery.State.SENT, ""))

    def delivery_rows() -> Iterator[dict[str, Any]]:
        for index, (pk, (state, reason)) in enumerate(zip(ids, states, strict=True)):
            applied = created[index] + timedelta(seconds=30)
            skipped = state == Delivery.State.SKIPPED
            row = {
                "invoice_id": pk,
                "store_id": store.pk,
                "state": state,
                "skip_reason": reason,
                "to": "" if skipped else chosen[index].emails,
                "copies": "" if skipped else store.copy_to,
                "reply_to": "" if skipped else store.reply_to,
                "message_id": f"<bench-{invoices}-{pk}@finanzapro.local>",
                "attempt_count": 0 if skipped else 1 if state == Delivery.State.SENT else 3,
                "created_at": applied,
            }
            if state == Delivery.State.SENT:
                row["sent_at"] = applied + timedelta(seconds=5)
            elif state == Delivery.State.FAILED:
                row["failed_at"] = applied + timedelta(minutes=30)
                row["failure_kind"] = Delivery.FailureKind.REJECTED
                row["failure_detail"] = "550 5.1.1 Mailbox unavailable"
            yield row

    _copy(Delivery, delivery_rows())
    deliveries = list(Delivery.objects.filter(store=store).values_list("pk", "state", "to", "created_at"))

    def recipient_rows() -> Iterator[dict[str, Any]]:
        for pk, state, to, created_at in deliveries:
            if state == Delivery.State.SKIPPED:
                continue
            sent = state == Delivery.State.SENT
            yield {
                "delivery_id": pk,
                "address": to,
                "role": DeliveryRecipient.Role.TO,
                "state": DeliveryRecipient.State.SENT if sent else DeliveryRecipient.State.FAILED,
                "smtp_code": 250 if sent else 550,
                "smtp_reply": "2.0.0 Ok" if sent else "5.1.1 Mailbox unavailable",
                "sent_at": created_at + timedelta(seconds=5) if sent else None,
            }
            yield {
                "delivery_id": pk,
                "address": store.copy_to,
                "role": DeliveryRecipient.Role.COPY,
                "state": DeliveryRecipient.State.SENT,
                "smtp_code": 250,
                "smtp_reply": "2.0.0 Ok",
                "sent_at": created_at + timedelta(seconds=5),
            }

    def attempt_rows() -> Iterator[dict[str, Any]]:
        for pk, state, _to, created_at in deliveries:
            if state == Delivery.State.SKIPPED:
                continue
            tries = 1 if state == Delivery.State.SENT else 3
            for number in range(1, tries + 1):
                started = created_at + timedelta(minutes=10 * (number - 1), seconds=1)
                accepted = state == Delivery.State.SENT
                yield {
                    "delivery_id": pk,
                    "number": number,
                    "started_at": started,
                    "finished_at": started + timedelta(seconds=4),
                    "outcome": DeliveryAttempt.Outcome.ACCEPTED if accepted else DeliveryAttempt.Outcome.REJECTED,
                    "smtp_code": 250 if accepted else 550,
                    "detail": "" if accepted else "550 5.1.1 Mailbox unavailable",
                }

    _copy(DeliveryRecipient, recipient_rows())
    _copy(DeliveryAttempt, attempt_rows())


def _tenant(invoices: int) -> Tenant | None:
    """The business with ``invoices`` invoices, when it is there, whole."""
    business = Business.objects.filter(legal_id=_legal_id(invoices)).first()
    if business is None:
        return None
    store = Store.objects.get(business=business)
    ids = list(Invoice.objects.filter(store=store).values_list("pk", flat=True))
    if len(ids) != invoices or Delivery.objects.filter(store=store).count() != invoices:
        raise RuntimeError(f"{business} is incomplete: drop the bench database and run again")
    return Tenant(invoices=invoices, store=store, admin=User.objects.get(business=business), invoice_ids=ids)


def ensure_data(sizes: tuple[int, ...]) -> tuple[list[Tenant], float]:
    """The businesses of ``sizes`` invoices, built when missing; and the seconds spent building."""
    bench.env.ensure_database()
    started = time.perf_counter()
    built = False
    tenants = []
    for invoices in sizes:
        tenant = _tenant(invoices)
        if tenant is None:
            with transaction.atomic():
                _build(invoices)
            built = True
            tenant = _tenant(invoices)
            if tenant is None:
                raise RuntimeError(f"the business of {invoices} invoices was not built")
        tenants.append(tenant)
    if built:
        # As autovacuum leaves a production database: statistics and the visibility map.
        with connection.cursor() as cursor:
            for model in TABLES:
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return tenants, time.perf_counter() - started


# --- The measurements -------------------------------------------------------------------------


def _url(page: str, tenant: Tenant, rng: random.Random) -> str:
    if page == "invoice_list":
        return f"{reverse('invoices:list')}?store={tenant.store.pk}"
    if page == "store_deliveries":
        return reverse("mailer:store_deliveries", args=[tenant.store.pk])
    return reverse("invoices:detail", args=[rng.choice(tenant.invoice_ids)])


def _get(client: Client, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code}")


def _client(tenant: Tenant) -> Client:
    client = Client()
    client.force_login(tenant.admin)
    return client


def _queries(client: Client, page: str, tenant: Tenant, rng: random.Random, samples: int = 3) -> list[int]:
    """The number of queries of ``samples`` requests (different invoices, for the invoice page)."""
    counts = []
    for _ in range(samples):
        with CaptureQueriesContext(connection) as captured:
            _get(client, _url(page, tenant, rng))
        counts.append(len(captured.captured_queries))
    return counts


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


def measure(tenants: list[Tenant], requests: int) -> dict[str, Any]:
    """Every page at both sizes, requested in turn (the order flipped at random each round)."""
    rng = random.Random(7)  # noqa: S311 - which invoice, which side first: not a secret
    clients = [_client(tenant) for tenant in tenants]
    results: dict[str, Any] = {}
    for page in PAGES:
        for client, tenant in zip(clients, tenants, strict=True):
            for _ in range(3):  # warm-up: templates, translations, connection, PostgreSQL's cache
                _get(client, _url(page, tenant, rng))
        queries = [_queries(client, page, tenant, rng) for client, tenant in zip(clients, tenants, strict=True)]
        times: list[list[float]] = [[], []]
        for _ in range(requests):
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            for side in order:
                url = _url(page, tenants[side], rng)
                started = time.perf_counter()
                _get(clients[side], url)
                times[side].append((time.perf_counter() - started) * 1000)
        small, large = (_p95(side) for side in times)
        results[page] = {
            "p95_ms_1k": round(small, 1),
            "p95_ms_100k": round(large, 1),
            "ratio": round(large / small, 3),
            "queries_1k": max(queries[0]),
            "queries_100k": max(queries[1]),
            "median_ms_1k": round(statistics.median(times[0]), 1),
            "median_ms_100k": round(statistics.median(times[1]), 1),
            "queries_vary": len(set(queries[0] + queries[1])) > 1,
        }
    return results


def run(quick: bool) -> dict[str, Any]:
    large = LARGE_QUICK if quick else LARGE
    requests = 20 if quick else 100
    started = time.perf_counter()
    tenants, build_seconds = ensure_data((SMALL, large))
    results = measure(tenants, requests)
    for row in results.values():
        row["goal_met"] = row["queries_1k"] == row["queries_100k"] and row["ratio"] <= RATIO_GOAL
    return {
        "pages": {
            **results,
            "quick": quick,
            "invoices_small": SMALL,
            "invoices_large": large,
            "requests_per_page_and_size": requests,
            "build_seconds": round(build_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1),
        }
    }


def table(results: dict[str, Any]) -> list[str]:
    section = results["pages"]
    small, large = section["invoices_small"], section["invoices_large"]
    note = " (quick: the large side has 10,000 invoices, not 100,000)" if section["quick"] else ""
    lines = [
        f"pages: p95 of {section['requests_per_page_and_size']} requests per page, "
        f"{small:,} against {large:,} invoices{note}",
        f"{'page':<18}{'p95 ms ' + _short(small):>14}{'p95 ms ' + _short(large):>15}{'ratio':>8}"
        f"{'queries':>10}  goal: same queries, ratio <= {RATIO_GOAL}",
    ]
    for page in PAGES:
        row = section[page]
        queries = f"{row['queries_1k']}/{row['queries_100k']}"
        met = "met" if row["goal_met"] else "NOT met"
        lines.append(
            f"{page:<18}{row['p95_ms_1k']:>14}{row['p95_ms_100k']:>15}{row['ratio']:>8}{queries:>10}  {met}"
            + ("  (query count varies between requests)" if row["queries_vary"] else "")
        )
    lines.append(f"data built in {section['build_seconds']} s; section took {section['seconds']} s")
    return lines


def _short(invoices: int) -> str:
    return f"{invoices // 1000}k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 against 10,000 invoices, fewer requests")
    args = parser.parse_args()
    results = run(args.quick)
    print("\n".join(table(results)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
