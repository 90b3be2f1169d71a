"""What users see of invoice emails: the invoice's email panel (and its polling while an email
is on its way), and the Correos pages with their filters, counts and pages, for each role.

The delivery rows are written here as the worker would leave them; test_delivery and
test_resend show the worker writing them for real."""

import re
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import mailer.selectors
import mailer.views
from accounts.models import User
from invoices.models import Customer, Invoice, ReportFormat
from invoices.services import LineData, invoice_apply, invoice_create
from mailer.models import Delivery, DeliveryAttempt, FailureNotice
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

COSTA_RICA = ZoneInfo("America/Costa_Rica")
POLLING = 'hx-trigger="every 2s"'
HTMX = {"HX-Request": "true"}


def english(client: Client) -> Client:
    """Assertions on new wording read the English page: it does not wait for the Spanish catalog."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def apply(store: Store, customer: Customer, user: User, description: str = "Café molido 500 g") -> Invoice:
    lines = [LineData(description, Decimal(1), Decimal(4500), tax_rate=Decimal(13))]
    draft = invoice_create(store=store, customer=customer, created_by=user, lines=lines)
    return invoice_apply(invoice=draft, applied_by=user)


@pytest.fixture
def emailing_store(store_a: Store) -> Store:
    store_a.email_enabled = True
    store_a.reply_to = "facturacion@a.example"
    store_a.copy_to = "contabilidad@a.example"
    store_a.save()
    return store_a


@pytest.fixture
def letter() -> ReportFormat:
    report, _created = ReportFormat.objects.get_or_create(
        code="panel-letter",
        defaults={
            "name_es": "Factura carta de prueba",
            "name_en": "Test letter invoice",
            "template_name": "reports/invoice_full_page.html",
            "page_size": ReportFormat.PageSize.LETTER,
        },
    )
    return report


def mark_sent(delivery: Delivery, report: ReportFormat, *, refused_copy: bool = False) -> Delivery:
    """As the worker leaves a delivery the server took (and, with ``refused_copy``, whose copy it refused)."""
    now = timezone.now()
    detail = "contabilidad@a.example: 550 5.1.1 Mailbox unavailable" if refused_copy else ""
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=now,
        finished_at=now,
        outcome=DeliveryAttempt.Outcome.ACCEPTED,
        detail=detail,
    )
    delivery.recipients.filter(role="to").update(state="sent", sent_at=now)
    if refused_copy:
        delivery.recipients.filter(role="copy").update(
            state="failed", smtp_code=550, smtp_reply="5.1.1 Mailbox unavailable"
        )
        FailureNotice.objects.create(delivery=delivery, address="duena@a.example", state="sent", sent_at=now)
    else:
        delivery.recipients.filter(role="copy").update(state="sent", sent_at=now)
    Delivery.objects.filter(pk=delivery.pk).update(
        state="sent", sent_at=now, attempt_count=1, report_format=report, next_attempt_at=None
    )
    delivery.refresh_from_db()
    return delivery


def mark_failed(delivery: Delivery, report: ReportFormat) -> Delivery:
    """As the worker leaves a delivery whose customer address the server rejected."""
    now = timezone.now()
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=now,
        finished_at=now,
        outcome=DeliveryAttempt.Outcome.REJECTED,
        smtp_code=550,
        detail="cliente@a.example: 550 5.1.1 Mailbox unavailable",
    )
    delivery.recipients.update(state="failed", smtp_code=550, smtp_reply="5.1.1 Mailbox unavailable")
    FailureNotice.objects.create(delivery=delivery, address="cashier_a@example.com", state="sent", sent_at=now)
    FailureNotice.objects.create(
        delivery=delivery, address="soporte@a.example", state="failed", error="550 5.1.1 No such user"
    )
    Delivery.objects.filter(pk=delivery.pk).update(
        state="failed",
        failed_at=now,
        attempt_count=1,
        failure_kind=Delivery.FailureKind.REJECTED,
        failure_detail="550 5.1.1 Mailbox unavailable",
        report_format=report,
        report_problem="The template reports/broken.html does not exist.",
        next_attempt_at=None,
    )
    delivery.refresh_from_db()
    return delivery


def panel_html(user: User, invoice: Invoice, *, htmx: bool = False) -> str:
    """The email panel as the invoice page shows it (or as htmx fetches it), in English."""
    client = english(client_for(user))
    if htmx:
        response = client.get(reverse("mailer:invoice_email_panel", args=[invoice.pk]), headers=HTMX)
        assert response.status_code == 200
        return response.text
    response = client.get(reverse("invoices:detail", args=[invoice.pk]))
    assert response.status_code == 200
    start = response.text.index('<section id="email-status"')
    return response.text[start : response.text.index("</section>", start)]


# --- The invoice's email panel ----------------------------------------------------------------


def test_the_panel_shows_a_sent_email_per_recipient_with_the_report_the_time_and_the_servers_answers(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    delivery = mark_sent(Delivery.objects.get(invoice=invoice), letter, refused_copy=True)

    html = panel_html(cashier_a, invoice)

    assert 'data-state="sent"' in html
    assert '<span class="badge delivery-state state-sent" data-testid="delivery-state">Sent</span>' in html
    assert "cliente@a.example" in html
    assert "Test letter invoice" in html  # the report sent
    assert delivery.sent_at is not None
    assert f'datetime="{delivery.sent_at.astimezone(COSTA_RICA).isoformat()}"' in html  # the time sent
    # The refused copy, with the server's answer, and the notice that told the store.
    assert "contabilidad@a.example" in html
    assert "550 5.1.1 Mailbox unavailable" in html
    assert 'data-testid="recipient" data-state="failed"' in html
    assert 'data-testid="attempt" data-outcome="accepted"' in html
    assert "duena@a.example" in html
    assert POLLING not in html


def test_the_panel_explains_a_failed_email_and_lists_the_notices(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    mark_failed(Delivery.objects.get(invoice=invoice), letter)

    html = panel_html(cashier_a, invoice)

    assert '<span class="badge delivery-state state-failed" data-testid="delivery-state">Failed</span>' in html
    assert (
        "The customer&#x27;s mail server rejected the address cliente@a.example: 550 5.1.1 Mailbox unavailable. "
        "Check that the address is spelled correctly."
    ) in html
    assert "The template reports/broken.html does not exist." in html  # the report problem
    assert 'data-testid="attempt" data-outcome="rejected"' in html
    assert "<code>cliente@a.example: 550 5.1.1 Mailbox unavailable</code>" in html
    # Both notices: the one sent and the one that failed, with its error.
    assert 'data-testid="notice" data-state="sent">cashier_a@example.com' in html
    assert 'data-testid="notice" data-state="failed">soporte@a.example' in html
    assert "550 5.1.1 No such user" in html
    assert POLLING not in html


@pytest.mark.parametrize(
    ("situation", "reason"),
    [
        ("sending off", "Sending invoices by email is off for this store"),
        ("opted out", "The customer does not receive invoices by email"),
    ],
)
def test_the_panel_says_why_an_invoice_was_not_emailed(
    situation: str, reason: str, emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    if situation == "sending off":
        emailing_store.email_enabled = False
        emailing_store.save()
    else:
        customer_a.send_invoices_by_email = False
        customer_a.save()
    invoice = apply(emailing_store, customer_a, cashier_a)

    html = panel_html(cashier_a, invoice)

    assert "Not sent" in html
    assert f'<span class="skip-reason" data-testid="skip-reason">{reason}</span>' in html
    assert POLLING not in html


def test_the_panel_reads_in_spanish_by_default(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    sent = mark_sent(Delivery.objects.get(invoice=apply(emailing_store, customer_a, cashier_a)), letter)
    failed = mark_failed(Delivery.objects.get(invoice=apply(emailing_store, customer_a, cashier_a)), letter)
    queued = Delivery.objects.get(invoice=apply(emailing_store, customer_a, cashier_a))
    emailing_store.email_enabled = False
    emailing_store.save()
    skipped = Delivery.objects.get(invoice=apply(emailing_store, customer_a, cashier_a))

    client = client_for(cashier_a)
    for delivery, words in [(sent, "Enviado"), (failed, "Fallido"), (queued, "En cola"), (skipped, "No enviado")]:
        response = client.get(reverse("invoices:detail", args=[delivery.invoice_id]))
        assert f'data-testid="delivery-state">{words}</span>' in response.text
        assert "Correo electrónico" in response.text


def test_the_panel_polls_while_an_email_is_on_its_way_and_stops_when_it_settles(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    delivery = Delivery.objects.get(invoice=invoice)
    assert delivery.state == Delivery.State.QUEUED

    for htmx in (False, True):
        html = panel_html(cashier_a, invoice, htmx=htmx)
        assert POLLING in html
        assert f'hx-get="{reverse("mailer:invoice_email_panel", args=[invoice.pk])}"' in html
        assert "Queued" in html

    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING)
    assert 'data-testid="delivery-state">Sending</span>' in panel_html(cashier_a, invoice, htmx=True)
    assert POLLING in panel_html(cashier_a, invoice, htmx=True)

    mark_sent(delivery, letter)
    for htmx in (False, True):
        html = panel_html(cashier_a, invoice, htmx=htmx)
        assert POLLING not in html
        assert 'data-testid="delivery-state">Sent</span>' in html


def test_the_panel_fragment_is_only_the_deliveries_and_without_htmx_it_is_a_page(
    emailing_store: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    url = reverse("mailer:invoice_email_panel", args=[invoice.pk])
    client = english(client_for(cashier_a))

    fragment = client.get(url, headers=HTMX).text
    assert fragment.lstrip().startswith('<div id="email-deliveries"')
    assert "<html" not in fragment

    page = client.get(url)
    assert page.status_code == 200
    assert "<html" in page.text
    assert 'id="email-status"' in page.text
    assert reverse("invoices:detail", args=[invoice.pk]) in page.text


def test_the_panel_lists_every_email_of_the_invoice_newest_first(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    first = mark_sent(Delivery.objects.get(invoice=invoice), letter)
    Delivery.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    second = Delivery.objects.create(
        invoice=invoice, store=emailing_store, state="queued", to="otra@a.example", requested_by=cashier_a
    )

    html = panel_html(cashier_a, invoice)

    assert html.index(f'id="delivery-{second.pk}"') < html.index(f'id="delivery-{first.pk}"')


def test_a_draft_has_no_email_yet(store_a: Store, customer_a: Customer, cashier_a: User) -> None:
    draft = invoice_create(
        store=store_a,
        customer=customer_a,
        created_by=cashier_a,
        lines=[LineData("Café", Decimal(1), Decimal(100))],
    )
    html = panel_html(cashier_a, draft)
    assert "The invoice is emailed to the customer when it is applied" in html
    assert 'data-testid="resend-email"' not in html


# --- The Correos pages ------------------------------------------------------------------------


@pytest.fixture
def mixed_deliveries(
    emailing_store: Store, store_a2: Store, customer_a: Customer, admin_a: User, letter: ReportFormat
) -> dict[str, Invoice]:
    """In business A: store A1 with one sent, one failed, one queued and one skipped email
    (the skipped one to "Bodega Sur"); store A2 with one queued email."""
    bodega = Customer.objects.create(
        business=customer_a.business, name="Bodega Sur", emails="compras@bodega.example", send_invoices_by_email=False
    )
    invoices = {
        "sent": apply(emailing_store, customer_a, admin_a),
        "failed": apply(emailing_store, customer_a, admin_a),
        "queued": apply(emailing_store, customer_a, admin_a),
        "skipped": apply(emailing_store, bodega, admin_a),
    }
    mark_sent(Delivery.objects.get(invoice=invoices["sent"]), letter)
    mark_failed(Delivery.objects.get(invoice=invoices["failed"]), letter)
    store_a2.email_enabled, store_a2.reply_to = True, "a2@a.example"
    store_a2.save()
    invoices["a2"] = apply(store_a2, customer_a, admin_a)
    return invoices


def counts_on(html: str) -> dict[str, str]:
    """The per-state counts of a Correos page, by state ("" for all)."""
    found = {}
    for state in ["", "queued", "sending", "sent", "failed", "skipped"]:
        marker = f'<span class="count" data-state="{state}">'
        start = html.index(marker) + len(marker)
        found[state] = re.sub(r"<[^>]+>", "", html[start : html.index("</span>", start)])
    return found


def rows_on(html: str) -> list[str]:
    """The states of the rows of a Correos page, in order."""
    table = html[html.index('id="delivery-list"') :]
    return [part.split('"', 1)[0] for part in table.split('data-state="')[1:]]


def test_the_business_page_lists_every_store_email_newest_first_with_counts(
    mixed_deliveries: dict[str, Invoice], admin_a: User
) -> None:
    response = english(client_for(admin_a)).get(reverse("mailer:deliveries"))

    assert response.status_code == 200
    html = response.text
    assert counts_on(html) == {"": "5", "queued": "2", "sending": "0", "sent": "1", "failed": "1", "skipped": "1"}
    assert rows_on(html) == ["queued", "skipped", "queued", "failed", "sent"]
    assert "Tienda A2" in html and "Tienda A1" in html
    # Each row leads to its invoice's panel.
    for invoice in mixed_deliveries.values():
        assert f'href="{reverse("invoices:detail", args=[invoice.pk])}#email-status"' in html
    assert "Bodega Sur" in html


def test_the_filters_narrow_the_rows_and_the_counts_follow_all_but_the_state(
    mixed_deliveries: dict[str, Invoice], admin_a: User, store_a: Store, store_a2: Store
) -> None:
    client = english(client_for(admin_a))
    url = reverse("mailer:deliveries")

    failed = client.get(url, {"state": "failed"}).text
    assert rows_on(failed) == ["failed"]
    assert counts_on(failed)[""] == "5"  # the counts say what each state would show

    bodega = client.get(url, {"customer": "bodega"}).text
    assert rows_on(bodega) == ["skipped"]
    assert counts_on(bodega) == {"": "1", "queued": "0", "sending": "0", "sent": "0", "failed": "0", "skipped": "1"}

    only_a2 = client.get(url, {"store": store_a2.pk}).text
    assert rows_on(only_a2) == ["queued"]
    assert counts_on(only_a2)[""] == "1"

    # Dates are local calendar days of the email's creation, both ends included.
    old = Delivery.objects.get(invoice=mixed_deliveries["sent"])
    Delivery.objects.filter(pk=old.pk).update(created_at=datetime(2025, 3, 10, 23, 30, tzinfo=COSTA_RICA))
    march = client.get(url, {"date_from": "2025-03-10", "date_to": "2025-03-10"}).text
    assert rows_on(march) == ["sent"]
    after = client.get(url, {"date_from": "2025-03-11"}).text
    assert "sent" not in rows_on(after)
    assert len(rows_on(after)) == 4

    # A store's page: that store's emails only, with the same filters.
    store_page = client.get(reverse("mailer:store_deliveries", args=[store_a.pk]), {"state": "queued"}).text
    assert rows_on(store_page) == ["queued"]
    assert counts_on(store_page)[""] == "4"
    assert f'href="{reverse("invoices:detail", args=[mixed_deliveries["queued"].pk])}#email-status"' in store_page


def test_support_sees_every_business_and_filters_by_one(
    mixed_deliveries: dict[str, Invoice], support: User, store_b: Store, customer_b: Customer, admin_b: User
) -> None:
    apply(store_b, customer_b, admin_b)
    client = english(client_for(support))

    everything = client.get(reverse("mailer:deliveries")).text
    assert counts_on(everything)[""] == "6"
    assert "Comercial B · Tienda B1" in everything

    only_b = client.get(reverse("mailer:deliveries"), {"business": store_b.business_id}).text
    assert rows_on(only_b) == ["skipped"]
    assert "Tienda A1" not in only_b.split('id="delivery-list"')[1]


def test_the_list_has_pages_of_fifty(emailing_store: Store, customer_a: Customer, admin_a: User) -> None:
    invoice = apply(emailing_store, customer_a, admin_a)
    Delivery.objects.bulk_create(
        [Delivery(invoice=invoice, store=emailing_store, state="queued", to="cliente@a.example") for _ in range(50)]
    )
    client = english(client_for(admin_a))

    first = client.get(reverse("mailer:deliveries")).text
    second = client.get(reverse("mailer:deliveries"), {"page": 2}).text

    assert len(rows_on(first)) == 50
    assert len(rows_on(second)) == 1
    assert "Page 1 of 2" in first
    assert counts_on(second)[""] == "51"


def test_a_state_pages_by_its_own_count_and_the_page_counts_its_emails_once(
    emailing_store: Store, customer_a: Customer, admin_a: User
) -> None:
    invoice = apply(emailing_store, customer_a, admin_a)
    Delivery.objects.bulk_create(
        [Delivery(invoice=invoice, store=emailing_store, state="queued", to="cliente@a.example") for _ in range(50)]
        + [Delivery(invoice=invoice, store=emailing_store, state="sent", to="cliente@a.example") for _ in range(3)]
    )
    queued = Delivery.objects.filter(state="queued").count()
    assert queued > 50
    client = english(client_for(admin_a))
    url = reverse("mailer:store_deliveries", args=[emailing_store.pk])

    with CaptureQueriesContext(connection) as queries:
        first = client.get(url, {"state": "queued"}).text
    counting = [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"]]
    second = client.get(url, {"state": "queued", "page": "2"}).text
    sent = client.get(url, {"state": "sent", "page": "2"}).text  # past the last page: the last page

    assert len(rows_on(first)) == 50
    assert "Page 1 of 2" in first
    assert len(rows_on(second)) == queued - 50
    assert rows_on(sent) == ["sent"] * 3
    assert "Page " not in sent
    assert counts_on(first)[""] == str(queued + 3)
    # The per-state counts are the page's only count: the paginator takes its total from them.
    assert len(counting) == 1


def test_a_busy_store_counts_up_to_a_limit_and_pages_on_without_counting(
    monkeypatch: pytest.MonkeyPatch, emailing_store: Store, customer_a: Customer, admin_a: User
) -> None:
    """Past the count limit a state says "more than", and the pages go on while rows follow."""
    monkeypatch.setattr(mailer.selectors, "STATE_COUNT_LIMIT", 5)
    monkeypatch.setattr(mailer.views, "DELIVERIES_PER_PAGE", 3)
    invoice = apply(emailing_store, customer_a, admin_a)  # one queued delivery of its own
    Delivery.objects.bulk_create(
        [Delivery(invoice=invoice, store=emailing_store, state="queued", to="cliente@a.example") for _ in range(7)]
        + [Delivery(invoice=invoice, store=emailing_store, state="sent", to="cliente@a.example") for _ in range(2)]
    )
    client = english(client_for(admin_a))
    url = reverse("mailer:store_deliveries", args=[emailing_store.pk])

    first = client.get(url, {"state": "queued"}).text
    third = client.get(url, {"state": "queued", "page": "3"}).text
    beyond = client.get(url, {"state": "queued", "page": "9"}).text
    absurd = client.get(url, {"state": "queued", "page": "9" * 30})
    sent = client.get(url, {"state": "sent"}).text

    counts = counts_on(first)
    assert (counts["queued"], counts["sent"], counts["failed"], counts[""]) == ("5+", "2", "0", "7+")
    assert 'title="More than 5"' in first
    assert rows_on(first) == ["queued"] * 3
    assert "Page 1<" in first and "Page 1 of" not in first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    assert rows_on(third) == ["queued"] * 2  # 8 queued: 3 + 3 + 2, every one reachable
    assert "Page 3<" in third and 'rel="next"' not in third and 'rel="prev"' in third
    assert rows_on(beyond) == rows_on(first)  # past the end: the first page
    assert absurd.status_code == 200 and rows_on(absurd.text) == rows_on(first)
    assert "Page 1 of 1" not in sent and rows_on(sent) == ["sent"] * 2  # under the limit: counted pages


def test_a_busy_store_page_reads_in_spanish(
    monkeypatch: pytest.MonkeyPatch, emailing_store: Store, customer_a: Customer, admin_a: User
) -> None:
    monkeypatch.setattr(mailer.selectors, "STATE_COUNT_LIMIT", 1)
    monkeypatch.setattr(mailer.views, "DELIVERIES_PER_PAGE", 1)
    apply(emailing_store, customer_a, admin_a)
    apply(emailing_store, customer_a, admin_a)
    html = client_for(admin_a).get(reverse("mailer:store_deliveries", args=[emailing_store.pk])).text
    assert 'title="Más de 1"' in html
    assert "Página 1<" in html


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("who", ["admin_a", "support"])
def test_the_number_of_queries_does_not_grow_with_the_rows(
    who: str, request: pytest.FixtureRequest, emailing_store: Store, store_a2: Store, admin_a: User
) -> None:
    user: User = request.getfixturevalue(who)

    def add(count: int) -> None:
        for index in range(count):
            customer = Customer.objects.create(
                business=emailing_store.business,
                name=f"Cliente {index}",
                emails=f"c{index}@a.example",
                send_invoices_by_email=True,
            )
            apply(emailing_store if index % 2 else store_a2, customer, admin_a)

    client = client_for(user)
    urls = [reverse("mailer:deliveries"), reverse("mailer:store_deliveries", args=[emailing_store.pk])]
    add(3)
    with_3 = [queries_for(client, url) for url in urls]
    add(27)
    assert Delivery.objects.count() == 30
    with_30 = [queries_for(client, url) for url in urls]
    assert with_30 == with_3


def test_the_panel_queries_do_not_grow_with_the_deliveries(
    emailing_store: Store, customer_a: Customer, cashier_a: User, letter: ReportFormat
) -> None:
    invoice = apply(emailing_store, customer_a, cashier_a)
    mark_failed(Delivery.objects.get(invoice=invoice), letter)
    client = client_for(cashier_a)
    url = reverse("mailer:invoice_email_panel", args=[invoice.pk])
    with_one = queries_for(client, url)
    for _ in range(5):
        mark_sent(
            Delivery.objects.create(invoice=invoice, store=emailing_store, state="queued", to="x@a.example"), letter
        )
    assert queries_for(client, url) == with_one


# --- Navigation -------------------------------------------------------------------------------


def nav_of(user: User) -> str:
    html = english(client_for(user)).get(reverse("home")).text
    start = html.index('<nav aria-label="Main navigation">')
    return html[start : html.index("</nav>", start)]


def test_store_admins_and_support_find_the_emails_page_in_the_navigation(
    admin_a: User, support: User, cashier_a: User
) -> None:
    link = f'<a href="{reverse("mailer:deliveries")}">Emails</a>'
    assert link in nav_of(admin_a)
    assert link in nav_of(support)
    assert reverse("mailer:deliveries") not in nav_of(cashier_a)


def test_the_stores_list_and_a_stores_edit_page_link_to_its_emails(admin_a: User, store_a: Store) -> None:
    client = english(client_for(admin_a))
    url = reverse("mailer:store_deliveries", args=[store_a.pk])
    assert f'href="{url}"' in client.get(reverse("stores:list")).text
    assert f'href="{url}"' in client.get(reverse("stores:edit", args=[store_a.pk])).text


# --- Tenancy: every new page, for each outsider ---------------------------------------------


@pytest.fixture
def business_a_emails(
    emailing_store: Store, store_a2: Store, customer_a: Customer, admin_a: User, letter: ReportFormat
) -> dict[str, Invoice]:
    """A sent email in store A1 (cashier A's store) and one in store A2 (not cashier A's)."""
    a1 = apply(emailing_store, customer_a, admin_a, description="Secreto de A1")
    mark_sent(Delivery.objects.get(invoice=a1), letter)
    a2 = apply(store_a2, customer_a, admin_a, description="Secreto de A2")
    return {"a1": a1, "a2": a2}


def urls_of(invoice: Invoice, store: Store) -> list[tuple[str, str, dict[str, str]]]:
    """Every new URL about ``invoice`` and ``store``: (method, url, extra headers)."""
    panel = reverse("mailer:invoice_email_panel", args=[invoice.pk])
    return [
        ("get", panel, {}),
        ("get", panel, HTMX),
        ("post", reverse("mailer:invoice_resend", args=[invoice.pk]), {}),
        ("post", reverse("mailer:invoice_resend", args=[invoice.pk]), HTMX),
        ("get", reverse("mailer:store_deliveries", args=[store.pk]), {}),
    ]


def test_another_business_gets_404_on_every_page_about_business_a(
    business_a_emails: dict[str, Invoice], store_a: Store, admin_b: User, store_b: Store
) -> None:
    client = client_for(admin_b)
    for method, url, headers in urls_of(business_a_emails["a1"], store_a):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 404, (method, url)
    # Their own Correos page shows nothing of business A.
    own = client.get(reverse("mailer:deliveries"))
    assert own.status_code == 200
    assert "Tienda A1" not in own.text
    assert "Cliente A" not in own.text
    assert Delivery.objects.count() == 2  # no resend got through


def test_a_cashier_has_no_correos_pages_and_no_panel_of_a_store_not_theirs(
    business_a_emails: dict[str, Invoice], store_a: Store, store_a2: Store, cashier_a: User
) -> None:
    client = client_for(cashier_a)
    # Their own store's invoice: the panel is theirs; the Correos pages are not.
    assert client.get(reverse("mailer:invoice_email_panel", args=[business_a_emails["a1"].pk])).status_code == 200
    assert client.get(reverse("mailer:deliveries")).status_code == 404
    assert client.get(reverse("mailer:store_deliveries", args=[store_a.pk])).status_code == 404
    for method, url, headers in urls_of(business_a_emails["a2"], store_a2):
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 404, (method, url)
    assert Delivery.objects.count() == 2


def test_anonymous_is_sent_to_sign_in_from_every_new_page(
    business_a_emails: dict[str, Invoice], store_a: Store
) -> None:
    client = client_for(None)
    for method, url, headers in [*urls_of(business_a_emails["a1"], store_a), ("get", reverse("mailer:deliveries"), {})]:
        response = getattr(client, method)(url, headers=headers)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("login"))
    assert Delivery.objects.count() == 2


def test_a_store_admin_cannot_use_the_filters_to_see_another_business(
    business_a_emails: dict[str, Invoice], admin_b: User, store_a: Store, store_b: Store
) -> None:
    client = client_for(admin_b)
    for params in [{"store": store_a.pk}, {"business": store_a.business_id}]:
        html = client.get(reverse("mailer:deliveries"), params).text
        assert rows_on(html) == []
        assert "Cliente A" not in html
