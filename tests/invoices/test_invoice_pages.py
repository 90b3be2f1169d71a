"""The cashier's invoice pages: list, form (with the htmx totals panel), invoice page, apply, void."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from invoices.models import Customer, Invoice
from invoices.money import format_money
from invoices.selectors import invoice_list
from invoices.services import LineData, invoice_apply, invoice_create, walk_in_customer_get
from stores.models import Store
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

COFFEE = ("Café molido 1 kg", "2", "4500", "0", "13")  # 9 000 + 13 % = 10 170
SUGAR = ("Azúcar 2 kg", "3", "1000", "10", "13")  # 3 000 - 300 + 351 = 3 051
COSTA_RICA = ZoneInfo("America/Costa_Rica")

Line = tuple[str, str, str, str, str]


def english(client: Client) -> Client:
    """Assertions on wording read the English page: it does not wait for the Spanish catalog."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def form_data(
    store: Store,
    customer: Customer | None,
    lines: Sequence[Line] = (COFFEE, SUGAR),
    *,
    action: str = "save",
    initial_forms: int = 0,
    **extra: str,
) -> dict[str, str]:
    data = {
        "store": str(store.pk),
        "customer": str(customer.pk) if customer else "",
        "notes": "",
        "action": action,
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": str(initial_forms),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for index, (description, quantity, unit_price, discount, tax) in enumerate(lines):
        data |= {
            f"lines-{index}-description": description,
            f"lines-{index}-quantity": quantity,
            f"lines-{index}-unit_price": unit_price,
            f"lines-{index}-discount_percent": discount,
            f"lines-{index}-tax_rate": tax,
        }
    return data | extra


def create_url(store: Store) -> str:
    return f"{reverse('invoices:create')}?store={store.pk}"


def make_invoice(store: Store, customer: Customer, user: User, *, apply: bool = False) -> Invoice:
    invoice = invoice_create(
        store=store,
        customer=customer,
        created_by=user,
        lines=[LineData("Café molido 1 kg", Decimal(2), Decimal(4500), tax_rate=Decimal(13))],
    )
    return invoice_apply(invoice=invoice, applied_by=user) if apply else invoice


def crc(amount: str) -> str:
    return format_money(Decimal(amount), "CRC", "es")


# --- The form --------------------------------------------------------------------------------


def test_a_draft_with_two_lines_stores_its_totals(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    response = client_for(cashier_a).post(create_url(store_a), form_data(store_a, customer_a))

    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("invoices:detail", args=[invoice.pk])
    assert (invoice.status, invoice.number, invoice.store, invoice.customer) == ("draft", None, store_a, customer_a)
    assert (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) == (
        Decimal("12000.00"),
        Decimal("300.00"),
        Decimal("1521.00"),
        Decimal("13221.00"),
    )
    assert [(line.position, line.description, line.total) for line in invoice.lines.all()] == [
        (1, "Café molido 1 kg", Decimal("10170.00")),
        (2, "Azúcar 2 kg", Decimal("3051.00")),
    ]


def test_amounts_can_be_typed_with_a_decimal_comma(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    client_for(cashier_a).post(
        create_url(store_a), form_data(store_a, customer_a, [("Queso", "1,5", "2500,50", "", "")])
    )

    line = Invoice.objects.get().lines.get()
    assert (line.quantity, line.unit_price, line.discount_percent, line.tax_rate) == (
        Decimal("1.5"),
        Decimal("2500.50"),
        Decimal(0),
        Decimal(0),
    )


def test_the_new_invoice_form_preselects_the_walk_in_customer(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    response = client_for(cashier_a).get(create_url(store_a))

    walk_in = walk_in_customer_get(business=store_a.business)
    assert response.status_code == 200
    start = response.text.index('id="id_customer"')
    select = response.text[start : response.text.index("</select>", start)]
    assert select.index(f'<option value="{walk_in.pk}" selected>Cliente contado</option>') < select.index("Cliente A")
    assert 'name="lines-0-description"' in response.text
    assert 'name="lines-0-tax_rate" value="13"' in response.text


def test_errors_show_next_to_their_fields_and_nothing_is_saved(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    response = english(client_for(cashier_a)).post(
        create_url(store_a), form_data(store_a, customer_a, [("", "0", "abc", "0", "13")])
    )

    assert response.status_code == 200
    assert response.text.count('class="error"') == 3  # description, quantity, unit price
    assert "This field is required." in response.text
    assert not Invoice.objects.exists()


def test_apply_numbers_the_invoice_and_shows_who_applied_it(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    client = english(client_for(cashier_a))
    response = client.post(create_url(store_a), form_data(store_a, customer_a, action="apply"), follow=True)

    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number, invoice.applied_by) == ("applied", 1, cashier_a)
    assert invoice.applied_at is not None
    assert response.redirect_chain == [(reverse("invoices:detail", args=[invoice.pk]), 302)]
    page = response.text
    assert "Invoice 1 applied." in page
    assert '<dd id="invoice-number" data-testid="invoice-number">1</dd>' in page
    assert '<span id="invoice-applied-by">cashier_a</span>' in page
    assert f'datetime="{invoice.applied_at.astimezone(COSTA_RICA).isoformat()}"' in page
    assert (
        crc("13221")
        in client.get(reverse("invoices:detail", args=[invoice.pk]), headers={"accept-language": "es"}).text
    )


def test_a_failed_apply_saves_nothing_and_shows_the_reason_in_the_error_box(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    response = english(client_for(cashier_a)).post(
        create_url(store_a), form_data(store_a, customer_a, [], action="apply")
    )

    assert response.status_code == 200
    errors = response.text[response.text.index('id="invoice-errors"') :]
    assert "Add at least one line before applying the invoice." in errors[: errors.index("</div>")]
    assert not Invoice.objects.exists()


def test_add_line_without_javascript_shows_one_more_empty_line(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    client = client_for(cashier_a)
    response = client.post(create_url(store_a), form_data(store_a, customer_a, [COFFEE], action="add_line"))

    assert response.status_code == 200
    assert 'value="Café molido 1 kg"' in response.text
    assert 'name="lines-1-description"' in response.text
    assert 'name="lines-1-tax_rate" value="13"' in response.text
    assert not Invoice.objects.exists()

    # The new line, left untouched, is not a line.
    data = form_data(store_a, customer_a, [COFFEE, ("", "1", "", "0", "13")])
    client.post(create_url(store_a), data)
    assert Invoice.objects.get().lines.count() == 1


def test_a_customer_of_another_business_cannot_be_chosen(cashier_a: User, store_a: Store, customer_b: Customer) -> None:
    response = english(client_for(cashier_a)).post(create_url(store_a), form_data(store_a, customer_b))

    field = response.text[response.text.index('id="field-customer"') :]
    assert "Select a valid choice." in field[: field.index("</div>")]
    assert not Invoice.objects.exists()


def test_a_customer_typed_in_the_form_is_created_with_the_invoice(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    data = form_data(
        store_a,
        customer_a,
        new_customer_name=" Ferretería Nueva ",
        new_customer_legal_id="3-101-333333",
        new_customer_emails="compras@nueva.example, Conta@Nueva.example",
        new_customer_send_by_email="on",
    )
    client_for(cashier_a).post(create_url(store_a), data)

    customer = Invoice.objects.get().customer
    assert (customer.name, customer.business, customer.legal_id) == (
        "Ferretería Nueva",
        store_a.business,
        "3-101-333333",
    )
    assert (customer.emails, customer.send_invoices_by_email) == ("compras@nueva.example; conta@nueva.example", True)


def test_a_wrong_new_customer_creates_neither_customer_nor_invoice(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    data = form_data(store_a, customer_a, new_customer_name="Nuevo", new_customer_emails="nope")
    response = english(client_for(cashier_a)).post(create_url(store_a), data)

    field = response.text[response.text.index('id="field-new_customer_emails"') :]
    assert "“nope” is not a valid email address." in field[: field.index("</div>")]
    assert not Invoice.objects.exists()
    assert not Customer.objects.filter(name="Nuevo").exists()


def test_a_draft_is_changed_through_its_edit_form(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, walk_in_customer_get(business=store_a.business), cashier_a)
    client = client_for(cashier_a)
    page = client.get(reverse("invoices:edit", args=[invoice.pk]))
    assert 'name="lines-0-quantity" value="2"' in page.text
    assert 'name="lines-0-unit_price" value="4\xa0500,00"' in page.text  # as Spanish speakers write it

    # The first line removed, a new one added.
    data = form_data(store_a, customer_a, [COFFEE, SUGAR], initial_forms=1) | {"lines-0-DELETE": "on"}
    response = client.post(reverse("invoices:edit", args=[invoice.pk]), data)

    invoice.refresh_from_db()
    assert response.status_code == 302
    assert invoice.customer == customer_a
    assert [line.description for line in invoice.lines.all()] == ["Azúcar 2 kg"]
    assert invoice.total == Decimal("3051.00")


# --- The totals panel (htmx) -------------------------------------------------------------------


def test_the_totals_endpoint_recomputes_the_panel_from_the_lines_being_typed(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    response = client_for(cashier_a).post(
        reverse("invoices:totals"), form_data(store_a, customer_a), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert "<html" not in response.text  # just the panel
    for element, amount in [
        ("total-subtotal", "12000"),
        ("total-discount", "300"),
        ("total-tax", "1521"),
        ("total-total", "13221"),
    ]:
        assert f'id="{element}"' in response.text
        assert crc(amount) in response.text
    assert crc("10170") in response.text  # per line
    assert crc("3051") in response.text
    assert not Invoice.objects.exists()


def test_the_totals_leave_out_unfinished_and_removed_lines(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    lines = [COFFEE, ("Sin precio", "1", "", "0", "13"), SUGAR]
    data = form_data(store_a, customer_a, lines) | {"lines-2-DELETE": "on"}
    response = english(client_for(cashier_a)).post(reverse("invoices:totals"), data)

    total = response.text[response.text.index('id="total-total"') :]
    assert total.startswith(
        f'id="total-total" data-testid="invoice-total">{format_money(Decimal(10170), "CRC", "en")}<'
    )
    assert "Complete this line to see its amounts." in response.text
    assert "Azúcar" not in response.text


def test_the_totals_use_the_currency_of_the_store(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    Store.objects.filter(pk=store_a.pk).update(currency="USD")
    response = client_for(cashier_a).post(reverse("invoices:totals"), form_data(store_a, customer_a, [COFFEE]))
    assert format_money(Decimal(10170), "USD", "es") in response.text


# --- Frozen invoices -----------------------------------------------------------------------------


def test_an_applied_invoice_cannot_be_changed_through_the_edit_form(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a, apply=True)
    client = english(client_for(cashier_a))

    page = client.get(reverse("invoices:edit", args=[invoice.pk]))
    assert page.status_code == 200
    assert 'id="invoice-frozen"' in page.text
    assert "frozen" in page.text
    assert 'name="lines-0-description"' not in page.text

    walk_in = walk_in_customer_get(business=store_a.business)
    response = client.post(reverse("invoices:edit", args=[invoice.pk]), form_data(store_a, walk_in, [SUGAR]))
    assert response.status_code == 409
    assert 'id="invoice-frozen"' in response.text
    invoice.refresh_from_db()
    assert (invoice.customer, invoice.total, invoice.status) == (customer_a, Decimal("10170.00"), "applied")
    assert [line.description for line in invoice.lines.all()] == ["Café molido 1 kg"]


def test_the_invoice_page_offers_edit_and_apply_only_for_drafts(
    cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a)
    client = english(client_for(cashier_a))
    draft_page = client.get(reverse("invoices:detail", args=[invoice.pk])).text
    assert reverse("invoices:edit", args=[invoice.pk]) in draft_page
    assert reverse("invoices:apply", args=[invoice.pk]) in draft_page
    assert '<dd id="invoice-number" data-testid="invoice-number">Draft</dd>' in draft_page
    assert '<section id="email-status" class="card">' in draft_page

    response = client.post(reverse("invoices:apply", args=[invoice.pk]), follow=True)
    assert "Invoice 1 applied." in response.text
    applied_page = response.text
    assert reverse("invoices:edit", args=[invoice.pk]) not in applied_page
    assert reverse("invoices:apply", args=[invoice.pk]) not in applied_page
    assert reverse("invoices:pdf", args=[invoice.pk]) in applied_page

    again = client.post(reverse("invoices:apply", args=[invoice.pk]), follow=True)
    assert "This invoice was already applied with number 1." in again.text
    invoice.refresh_from_db()
    assert invoice.number == 1


def test_the_pdf_link_answers_the_invoice_as_a_pdf(cashier_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a, apply=True)
    response = client_for(cashier_a).get(reverse("invoices:pdf", args=[invoice.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


# --- Voiding ------------------------------------------------------------------------------------


def test_voiding_needs_a_store_admin_and_a_reason(
    admin_a: User, cashier_a: User, store_a: Store, customer_a: Customer
) -> None:
    invoice = make_invoice(store_a, customer_a, cashier_a, apply=True)
    url = reverse("invoices:void", args=[invoice.pk])

    assert 'id="void-invoice"' not in client_for(cashier_a).get(reverse("invoices:detail", args=[invoice.pk])).text
    assert client_for(cashier_a).post(url, {"reason": "Precio equivocado"}).status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == "applied"

    admin = english(client_for(admin_a))
    assert 'id="void-invoice"' in admin.get(reverse("invoices:detail", args=[invoice.pk])).text
    response = admin.post(url, {"reason": "   "})
    assert response.status_code == 400
    field = response.text[response.text.index('id="field-reason"') :]
    assert "This field is required." in field[: field.index("</div>")]
    invoice.refresh_from_db()
    assert invoice.status == "applied"

    response = admin.post(url, {"reason": "Precio equivocado"}, follow=True)
    assert "Invoice 1 voided." in response.text
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.voided_by, invoice.void_reason) == (
        "voided",
        1,
        admin_a,
        "Precio equivocado",
    )


def test_a_draft_cannot_be_voided(admin_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, admin_a)
    response = english(client_for(admin_a)).post(reverse("invoices:void", args=[invoice.pk]), {"reason": "Error"})
    assert response.status_code == 400
    assert "Only an applied invoice can be voided." in response.text
    invoice.refresh_from_db()
    assert invoice.status == "draft"


# --- The list ------------------------------------------------------------------------------------


def listed(client: Client, store: Store, **filters: str) -> list[int]:
    response = client.get(reverse("invoices:list"), {"store": str(store.pk), **filters})
    assert response.status_code == 200
    return sorted(invoice.pk for invoice in response.context["page"])


def test_the_list_filters_by_status_number_customer_and_date(
    admin_a: User, store_a: Store, customer_a: Customer
) -> None:
    walk_in = walk_in_customer_get(business=store_a.business)
    first = make_invoice(store_a, customer_a, admin_a, apply=True)  # number 1
    second = make_invoice(store_a, walk_in, admin_a, apply=True)  # number 2
    draft = make_invoice(store_a, customer_a, admin_a)
    Invoice.objects.filter(pk=first.pk).update(
        created_at=datetime(2025, 3, 1, 9, tzinfo=COSTA_RICA),
        applied_at=datetime(2025, 3, 2, 23, 30, tzinfo=COSTA_RICA),
    )
    client = client_for(admin_a)

    assert listed(client, store_a) == sorted([first.pk, second.pk, draft.pk])
    assert listed(client, store_a, status="draft") == [draft.pk]
    assert listed(client, store_a, status="applied") == sorted([first.pk, second.pk])
    assert listed(client, store_a, number="2") == [second.pk]
    assert listed(client, store_a, customer="clIENTE a") == sorted([first.pk, draft.pk])
    assert listed(client, store_a, customer="contado") == [second.pk]
    # Local calendar days, both ends included: 23:30 in Costa Rica is already the next day in UTC.
    assert listed(client, store_a, date_field="applied", date_from="2025-03-02", date_to="2025-03-02") == [first.pk]
    assert listed(client, store_a, date_field="created", date_to="2025-03-01") == [first.pk]
    assert listed(client, store_a, date_field="created", date_from="2025-03-02") == sorted([second.pk, draft.pk])
    # A wrong filter is shown as such and left out.
    response = client.get(reverse("invoices:list"), {"store": str(store_a.pk), "number": "x"})
    assert response.context["filter_form"].errors
    assert len(response.context["page"]) == 3


def test_the_list_shows_one_store_at_a_time_the_first_by_default(
    admin_a: User, store_a: Store, store_a2: Store, customer_a: Customer
) -> None:
    in_a = make_invoice(store_a, customer_a, admin_a)
    in_a2 = make_invoice(store_a2, customer_a, admin_a)
    client = client_for(admin_a)

    response = client.get(reverse("invoices:list"))
    assert response.context["store"] == store_a
    assert [invoice.pk for invoice in response.context["page"]] == [in_a.pk]
    assert listed(client, store_a2) == [in_a2.pk]
    assert (
        f'href="{reverse("invoices:create")}?store={store_a2.pk}"'
        in client.get(reverse("invoices:list"), {"store": store_a2.pk}).text
    )


def test_the_list_shows_fifty_invoices_a_page(admin_a: User, store_a: Store, customer_a: Customer) -> None:
    for _ in range(51):
        make_invoice(store_a, customer_a, admin_a)
    client = english(client_for(admin_a))

    first = client.get(reverse("invoices:list"), {"store": str(store_a.pk), "status": "draft"})
    assert len(first.context["page"]) == 50
    assert "Page 1 of 2" in first.text
    assert f'href="?store={store_a.pk}&amp;status=draft&amp;page=2"' in first.text
    second = client.get(reverse("invoices:list"), {"store": str(store_a.pk), "status": "draft", "page": "2"})
    assert len(second.context["page"]) == 1


def queries_for(client: Client, url: str, data: dict[str, str] | None = None) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, data).status_code == 200
    return len(queries)


def test_the_list_and_the_invoice_page_make_as_many_queries_with_few_invoices_as_with_many(
    admin_a: User, store_a: Store, customer_a: Customer
) -> None:
    client = client_for(admin_a)
    newest = [make_invoice(store_a, customer_a, admin_a, apply=True) for _ in range(3)][-1]
    list_with_3 = queries_for(client, reverse("invoices:list"), {"store": str(store_a.pk)})
    page_with_3 = queries_for(client, reverse("invoices:detail", args=[newest.pk]))
    for _ in range(57):
        make_invoice(store_a, customer_a, admin_a, apply=True)

    assert queries_for(client, reverse("invoices:list"), {"store": str(store_a.pk)}) == list_with_3
    assert queries_for(client, reverse("invoices:list"), {"store": str(store_a.pk), "page": "2"}) == list_with_3
    assert queries_for(client, reverse("invoices:detail", args=[newest.pk])) == page_with_3


def test_a_page_of_the_list_is_read_off_an_index_in_the_lists_order(
    admin_a: User, store_a: Store, customer_a: Customer
) -> None:
    """A store's newest invoices come straight from an index: PostgreSQL never sorts them
    all to show fifty, however many the store has."""
    make_invoice(store_a, customer_a, admin_a, apply=True)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")  # a sort only where nothing else can do
    plan = invoice_list(user=admin_a, store=store_a)[:50].explain()

    assert "invoice_store_created_idx" in plan
    assert "Sort" not in plan


def test_the_navigation_has_invoices_before_customers(cashier_a: User) -> None:
    client = english(client_for(cashier_a))
    nav = client.get(reverse("invoices:list")).text
    assert nav.index('<a href="/invoices/" aria-current="page">Invoices</a>') < nav.index(">Customers</a>")
    customers_page = client.get(reverse("invoices:customer_list")).text
    assert '<a href="/invoices/">Invoices</a>' in customers_page
    assert '<a href="/invoices/customers/" aria-current="page">Customers</a>' in customers_page


# --- Tenancy ---------------------------------------------------------------------------------------


def test_a_cashier_cannot_reach_the_invoices_of_a_store_they_do_not_work_in(
    admin_a: User, cashier_a: User, store_a: Store, store_a2: Store, customer_a: Customer
) -> None:
    draft = make_invoice(store_a2, customer_a, admin_a)
    applied = make_invoice(store_a2, customer_a, admin_a, apply=True)
    client = client_for(cashier_a)

    for invoice in (draft, applied):
        for name in ("detail", "edit", "pdf"):
            assert client.get(reverse(f"invoices:{name}", args=[invoice.pk])).status_code == 404, name
        assert client.post(reverse("invoices:apply", args=[invoice.pk])).status_code == 404
    assert client.post(reverse("invoices:edit", args=[draft.pk]), form_data(store_a2, customer_a)).status_code == 404
    assert client.get(reverse("invoices:list"), {"store": store_a2.pk}).status_code == 404
    assert store_a2.name not in client.get(reverse("invoices:list")).text

    # A forged store id on the form.
    assert client.get(create_url(store_a2)).status_code == 404
    assert client.post(create_url(store_a2), form_data(store_a2, customer_a, action="apply")).status_code == 404
    assert client.post(reverse("invoices:totals"), form_data(store_a2, customer_a)).status_code == 404

    draft.refresh_from_db()
    assert (draft.status, draft.lines.count()) == ("draft", 1)
    assert Invoice.objects.count() == 2


def test_another_business_gets_404_on_every_invoice_url_and_changes_nothing(
    admin_a: User, admin_b: User, store_a: Store, store_b: Store, customer_a: Customer
) -> None:
    draft = make_invoice(store_a, customer_a, admin_a)
    applied = make_invoice(store_a, customer_a, admin_a, apply=True)
    client = client_for(admin_b)
    data = form_data(store_a, customer_a, [SUGAR], reason="Robo")
    urls = [
        (f"{reverse('invoices:list')}?store={store_a.pk}", {"GET"}),
        (create_url(store_a), {"GET", "POST"}),
        (reverse("invoices:totals"), {"POST"}),
    ]
    for invoice in (draft, applied):
        urls += [
            (reverse("invoices:detail", args=[invoice.pk]), {"GET"}),
            (reverse("invoices:edit", args=[invoice.pk]), {"GET", "POST"}),
            (reverse("invoices:apply", args=[invoice.pk]), {"POST"}),
            (reverse("invoices:void", args=[invoice.pk]), {"POST"}),
            (reverse("invoices:pdf", args=[invoice.pk]), {"GET"}),
        ]

    for url, methods in urls:
        for method in ("GET", "POST"):
            response = client.get(url) if method == "GET" else client.post(url, data)
            # A method the URL does not take is refused before anything is looked up.
            expected = 404 if method in methods else 405
            assert response.status_code == expected, (method, url)

    for invoice in (draft, applied):
        before = (invoice.status, invoice.number, invoice.total, invoice.customer_id, invoice.void_reason)
        invoice.refresh_from_db()
        assert (invoice.status, invoice.number, invoice.total, invoice.customer_id, invoice.void_reason) == before
    assert Invoice.objects.count() == 2
    assert not Invoice.objects.filter(store=store_b).exists()
    # admin_b's own list shows only business B.
    assert store_a.name not in client.get(reverse("invoices:list")).text


def test_support_works_in_every_business(support: User, store_a: Store, customer_a: Customer) -> None:
    response = client_for(support).post(create_url(store_a), form_data(store_a, customer_a, action="apply"))
    assert response.status_code == 302
    assert Invoice.objects.get().applied_by == support


def test_anonymous_visitors_are_sent_to_sign_in(admin_a: User, store_a: Store, customer_a: Customer) -> None:
    invoice = make_invoice(store_a, customer_a, admin_a)
    client = client_for(None)
    gets = [reverse("invoices:list"), create_url(store_a)] + [
        reverse(f"invoices:{name}", args=[invoice.pk]) for name in ("detail", "edit", "pdf")
    ]
    posts = [create_url(store_a), reverse("invoices:totals")] + [
        reverse(f"invoices:{name}", args=[invoice.pk]) for name in ("edit", "apply", "void")
    ]
    for response in [client.get(url) for url in gets] + [client.post(url, {"reason": "x"}) for url in posts]:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    invoice.refresh_from_db()
    assert invoice.status == "draft"
