"""Invoices rendered to PDF by real WeasyPrint, read back with pypdf and pdftoppm."""

import base64
import gc
import io
import logging
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pypdf
import pytest
import weasyprint
from celery.signals import worker_process_init
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import translation
from django.utils.translation import gettext
from PIL import Image, ImageDraw
from pypdf.generic import DictionaryObject
from pytest_django import DjangoAssertNumQueries, Settings

from accounts.models import Business, User
from invoices import reports
from invoices.apps import warm_up_reports
from invoices.models import Customer, Invoice, InvoiceSequence, ReportFormat
from invoices.money import format_money
from invoices.reports import (
    BUILT_IN_FORMATS,
    MAX_IMAGE_BYTES,
    ReportRenderError,
    render_invoice_pdf,
    render_sample_pdf,
    report_format_for_email,
    report_format_for_print,
    report_url_fetcher,
)
from invoices.services import LineData, invoice_apply, invoice_create
from stores.models import Store
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.django_db

BUILT_IN_CODES = list(BUILT_IN_FORMATS)
FULL_PAGE_CODES = ["invoice-letter", "invoice-a4"]
FIRST_NUMBER = 4821  # the store's sequence starts here, so the number cannot be mistaken for a quantity
MM = 72 / 25.4  # PDF points per millimetre


# --- Helpers ----------------------------------------------------------------------------------


def line_data(count: int) -> list[LineData]:
    """``count`` lines, the first one a coffee; taxed at 13 % and 1 %, some discounted."""
    products = ["Café molido 500 g", "Queso Turrialba 1 kg", "Natilla 500 ml", "Tortillas (12)", "Gallo pinto"]
    return [
        LineData(
            products[index % len(products)] + ("" if index < len(products) else f" · lote {index + 1}"),
            Decimal(1 + index % 3),
            Decimal(1250 + 475 * index),
            Decimal(10) if index % 4 == 1 else Decimal(0),
            Decimal(1) if index % 5 == 1 else Decimal(13),
        )
        for index in range(count)
    ]


def applied_invoice(store: Store, customer: Customer, user: User, *, lines: list[LineData], notes: str = "") -> Invoice:
    InvoiceSequence.objects.get_or_create(store=store, defaults={"last_number": FIRST_NUMBER - 1})
    draft = invoice_create(store=store, customer=customer, created_by=user, lines=lines, notes=notes)
    return invoice_apply(invoice=draft, applied_by=user)


def built_in(code: str) -> ReportFormat:
    return ReportFormat.objects.get(code=code)


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def squeezed(text: str) -> str:
    """``text`` without whitespace: a PDF breaks long words where the paper ends."""
    return re.sub(r"\s+", "", text)


def translated(language: str, message: str, **params: Any) -> str:
    with translation.override(language):
        text = gettext(message)
    return text % params if params else text


def png_logo() -> bytes:
    image = Image.new("RGB", (240, 96), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((4, 4, 92, 92), radius=18, fill="#0b6e4f")
    draw.ellipse((28, 28, 68, 68), fill="white")
    draw.rectangle((108, 30, 232, 46), fill="#0b6e4f")
    draw.rectangle((108, 56, 200, 68), fill="#7fb8a4")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def media_root(settings: Settings, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def store_with_logo(store_a: Store, media_root: Path) -> Store:
    store_a.address = "Avenida Central, calles 2 y 4\nSan José, Costa Rica"
    store_a.phone = "2222-3333"
    store_a.logo.save("tienda-a1.png", ContentFile(png_logo()), save=True)
    return store_a


@pytest.fixture
def english_customer(business_a: Business) -> Customer:
    return Customer.objects.create(
        business=business_a, name="Pacific Trading Ltd.", emails="ap@pacific.example", language="en"
    )


class RecordingServer:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorded.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()
                self.wfile.write(b"body { background: red }")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "invoices.reports" and record.levelno == logging.WARNING and "refused" in record.getMessage()
    ]


# --- What the PDF says ------------------------------------------------------------------------


@pytest.mark.parametrize("line_count", [2, 60])
@pytest.mark.parametrize("code", BUILT_IN_CODES)
def test_each_format_prints_the_number_customer_lines_and_total(
    code: str, line_count: int, store_a: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(line_count))

    text = "\n".join(pages_text(render_invoice_pdf(invoice=invoice, report_format=built_in(code))))

    assert invoice.number == FIRST_NUMBER
    assert translated("es", "No. %(number)s", number=FIRST_NUMBER) in text
    assert "Cliente A" in text
    assert "Café molido 500 g" in text
    assert format_money(invoice.total, "CRC", "es") in text  # as the invoice page shows it: ₡1 234,50
    if line_count == 60:
        assert "Gallo pinto · lote 60" in text


@pytest.mark.parametrize("code", FULL_PAGE_CODES)
def test_a_long_invoice_numbers_its_pages_in_the_customers_language(
    code: str, store_a: Store, customer_a: Customer, english_customer: Customer, cashier_a: User
) -> None:
    spanish = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(60))
    english = applied_invoice(store_a, english_customer, cashier_a, lines=line_data(60))

    spanish_pages = pages_text(render_invoice_pdf(invoice=spanish, report_format=built_in(code)))
    english_pages = pages_text(render_invoice_pdf(invoice=english, report_format=built_in(code)))

    assert len(spanish_pages) == 2
    assert "Página 1 de 2" in spanish_pages[0]
    assert "Página 2 de 2" in spanish_pages[1]
    assert len(english_pages) == 2
    assert "Page 2 of 2" in english_pages[1]
    assert format_money(english.total, "CRC", "en") in english_pages[1]  # ₡1,234.50 for English readers
    assert "Pacific Trading Ltd." in english_pages[0]


def test_the_ticket_is_80_mm_wide_and_as_long_as_its_lines(
    store_a: Store, customer_a: Customer, cashier_a: User
) -> None:
    ticket = built_in("pos-ticket-80mm")
    short = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(2))
    long = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(60))

    short_pages = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice=short, report_format=ticket))).pages
    long_pages = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice=long, report_format=ticket))).pages

    assert len(short_pages) == len(long_pages) == 1
    assert float(short_pages[0].mediabox.width) == pytest.approx(80 * MM, abs=0.01)  # 226.77 pt
    assert float(long_pages[0].mediabox.width) == pytest.approx(80 * MM, abs=0.01)
    assert 60 * MM < float(short_pages[0].mediabox.height) < 160 * MM
    assert float(long_pages[0].mediabox.height) > 4 * float(short_pages[0].mediabox.height)


WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>')


def printed_lines(pdf: bytes, tmp_path: Path) -> list[list[tuple[float, float, str]]]:
    """The PDF's words as poppler reads them, grouped by line (same top): (left, right, text)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    output = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True).stdout
    lines: dict[float, list[tuple[float, float, str]]] = {}
    for left, top, right, text in WORD.findall(output):
        lines.setdefault(round(float(top), 1), []).append((float(left), float(right), text))
    return [sorted(words) for _top, words in sorted(lines.items())]


def test_the_ticket_sets_each_amount_at_the_right_of_its_labels_first_line(
    store_a: Store, customer_a: Customer, cashier_a: User, tmp_path: Path
) -> None:
    long_line = LineData(
        "Motocicleta XR150L modelo 2027 color rojo, con casco y garantía de fábrica",
        Decimal(3),
        Decimal(29_999_999),
        Decimal(5),
        Decimal(13),
    )
    invoice = applied_invoice(store_a, customer_a, cashier_a, lines=[*line_data(3), long_line])
    amounts = {format_money(line.total, "CRC", "es") for line in invoice.lines.all()}
    amounts |= {format_money(value, "CRC", "es") for value in (invoice.subtotal, invoice.tax_total, invoice.total)}
    right_edge = (80 - 4) * MM  # the paper less its margin

    lines = printed_lines(render_invoice_pdf(invoice=invoice, report_format=built_in("pos-ticket-80mm")), tmp_path)

    found = set()
    for words in lines:
        text = " ".join(word for _left, _right, word in words)
        for amount in amounts:
            amount_words = amount.split()
            if len(words) > len(amount_words) and [word for *_x, word in words[-len(amount_words) :]] == amount_words:
                found.add(amount)
                label, figure = words[: -len(amount_words)], words[-len(amount_words) :]
                assert figure[-1][1] == pytest.approx(right_edge, abs=0.5), text  # right-aligned
                assert label[0][0] == pytest.approx(4 * MM, abs=0.5), text  # the label starts the line
                assert label[-1][1] < figure[0][0] - 2, text  # and ends before the amount
    assert found == amounts  # each on its label's line: the 90 million total and the 13 % tax too


def test_the_text_is_set_in_the_font_the_project_ships(store_a: Store, customer_a: Customer, cashier_a: User) -> None:
    invoice = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(2))

    for code in BUILT_IN_CODES:
        reader = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice=invoice, report_format=built_in(code))))
        resources = cast(DictionaryObject, reader.pages[0]["/Resources"].get_object())
        fonts = cast(DictionaryObject, resources["/Font"].get_object())
        base_fonts = [cast(DictionaryObject, fonts[key].get_object())["/BaseFont"] for key in fonts]
        names = {str(base_font).split("+", 1)[1] for base_font in base_fonts}
        # The family of static/reports/fonts.css: only the shipped DejaVu Sans files carry it.
        assert names == {"FinanzaPro-Sans", "FinanzaPro-Sans-Bold"}, code


def test_the_store_logo_prints_when_the_format_shows_it(
    store_with_logo: Store, customer_a: Customer, cashier_a: User
) -> None:
    invoice = applied_invoice(store_with_logo, customer_a, cashier_a, lines=line_data(2))
    letter = built_in("invoice-letter")

    with_logo = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice=invoice, report_format=letter)))
    letter.show_logo = False
    without_logo = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(invoice=invoice, report_format=letter)))

    assert len(with_logo.pages[0].images) == 1
    assert len(without_logo.pages[0].images) == 0


def test_a_sample_is_made_up_and_saves_nothing(
    store_a: Store, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    unsaved_format = ReportFormat(
        code="trial", template_name="reports/invoice_full_page.html", page_size="A4", accent_color="#1d4ed8"
    )
    with django_assert_num_queries(0):
        spanish = "\n".join(pages_text(render_sample_pdf(store=store_a, report_format=unsaved_format)))
        english = "\n".join(pages_text(render_sample_pdf(store=store_a, report_format=unsaved_format, language="en")))

    assert "Tienda A1" in spanish
    assert "Café molido 500 g" in spanish
    assert translated("es", "Sample customer") in spanish
    assert translated("en", "Sample customer") in english
    assert "Página 1 de 1" in spanish
    assert "Page 1 of 1" in english
    assert Invoice.objects.count() == 0


# --- Safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", BUILT_IN_CODES)
def test_markup_typed_into_an_invoice_prints_as_text_and_fetches_nothing(
    code: str,
    store_a: Store,
    business_a: Business,
    cashier_a: User,
    http_server: RecordingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    description = f"<img src={http_server.url('/img')}>"
    name = "Cliente <link rel=attachment href=file:///etc/passwd>"
    notes = f"<style>body{{background:url({http_server.url('/css')})}}</style> url(file:///dev/urandom)"
    customer = Customer.objects.create(business=business_a, name=name, emails="x@a.example")
    invoice = applied_invoice(
        store_a, customer, cashier_a, lines=[LineData(description, Decimal(1), Decimal(1000))], notes=notes
    )

    with caplog.at_level(logging.WARNING):
        pdf = render_invoice_pdf(invoice=invoice, report_format=built_in(code))

    assert http_server.requests == []
    assert refusals(caplog) == []  # not even tried: the markup is text
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.attachments == {}
    text = squeezed("\n".join(page.extract_text() for page in reader.pages))
    for typed in (description, name, notes):
        assert squeezed(typed) in text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/logo.png",
        "https://example.com/logo.png",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "static:../finanzapro/settings.py",
        "static:css/app.css",  # a static file, but no report's
        "media:store-logos/other-store.png",  # not the logo of the store being printed
        "data:image/png;base64," + "A" * (MAX_IMAGE_BYTES * 4 // 3 + 400),
    ],
)
def test_the_fetcher_refuses_and_logs_every_other_url(
    url: str, http_server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    fetcher = report_url_fetcher()

    with caplog.at_level(logging.WARNING), fetcher.serving(), pytest.raises(ValueError, match="refused"):
        fetcher.fetch(url.format(port=http_server.port))

    assert len(refusals(caplog)) == 1
    assert http_server.requests == []


def test_the_fetcher_serves_the_shipped_fonts_the_store_logo_and_small_data_urls(store_with_logo: Store) -> None:
    fetcher = report_url_fetcher()
    logo_name = str(store_with_logo.logo.name)
    logo_url = f"media:{quote(logo_name)}"

    with fetcher.serving(media_names=[logo_name]):
        font = fetcher.fetch("static:fonts/DejaVuSans.ttf")
        logo = fetcher.fetch(logo_url)
        small = fetcher.fetch("data:image/png;base64," + base64.b64encode(png_logo()).decode())
    with fetcher.serving(), pytest.raises(ValueError, match="refused"):
        fetcher.fetch(logo_url)  # another render: another store

    assert font.read() == (PROJECT_DIR / "static/fonts/DejaVuSans.ttf").read_bytes()
    with default_storage.open(logo_name, "rb") as stored:
        assert logo.read() == stored.read()
    assert logo.content_type == "image/png"
    assert small.read() == png_logo()


def test_a_logo_larger_than_the_limit_is_left_out(store_a: Store, media_root: Path) -> None:
    name = default_storage.save("store-logos/huge.png", ContentFile(b"\0" * (MAX_IMAGE_BYTES + 1)))
    fetcher = report_url_fetcher()

    with fetcher.serving(media_names=[name]), pytest.raises(ValueError, match="refused"):
        fetcher.fetch(f"media:{name}")


def test_a_render_past_its_deadline_stops_at_its_next_fetch() -> None:
    fetcher = report_url_fetcher()

    with fetcher.serving(deadline=time.monotonic() - 1), pytest.raises(weasyprint.urls.FatalURLFetchingError):
        fetcher.fetch("static:fonts/DejaVuSans.ttf")


def test_a_render_that_takes_too_long_is_a_render_error(store_a: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    original = weasyprint.HTML.render

    def stuck(self: weasyprint.HTML, *args: Any, **kwargs: Any) -> Any:
        release.wait(timeout=30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(reports, "RENDER_TIME_LIMIT_SECONDS", 0.5)
    monkeypatch.setattr(weasyprint.HTML, "render", stuck)
    try:
        with pytest.raises(ReportRenderError, match=r"0\.5"):
            render_sample_pdf(store=store_a, report_format=built_in("invoice-letter"))
    finally:
        release.set()
    monkeypatch.undo()

    # The stuck render gives its thread back, and the next render works.
    assert render_sample_pdf(store=store_a, report_format=built_in("invoice-letter")).startswith(b"%PDF")


def test_a_weasyprint_failure_is_a_render_error_saying_why(store_a: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: weasyprint.HTML, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Pango ran out of glyphs")

    monkeypatch.setattr(weasyprint.HTML, "render", failing)

    with pytest.raises(ReportRenderError, match="Pango ran out of glyphs"):
        render_sample_pdf(store=store_a, report_format=built_in("invoice-a4"))


# --- Broken formats ---------------------------------------------------------------------------


@pytest.fixture
def report_templates(settings: Settings, tmp_path: Path) -> Path:
    """A templates directory of the test's own, searched before the project's."""
    directory = tmp_path / "templates"
    (directory / "reports").mkdir(parents=True)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [directory, *settings.TEMPLATES[0]["DIRS"]]}]
    return directory


def test_a_format_whose_template_is_missing_is_a_render_error_naming_it(store_a: Store) -> None:
    missing = ReportFormat(code="missing", template_name="reports/no_such_report.html", page_size="letter")

    with pytest.raises(ReportRenderError, match=re.escape("reports/no_such_report.html")):
        render_sample_pdf(store=store_a, report_format=missing)


@pytest.mark.parametrize(
    ("html", "css", "named"),
    [
        ("{% if %}broken{% endif %}", "", "reports/custom.html"),  # a syntax error
        ("{% url 'no-such-page' %}", "", "reports/custom.html"),  # an error while rendering
        ("<p>fine</p>", None, "reports/custom.css"),  # no stylesheet next to the template
        ("<p>fine</p>", "{% load no_such_library %}", "reports/custom.css"),
    ],
)
def test_a_format_whose_template_is_broken_is_a_render_error_naming_it(
    html: str, css: str | None, named: str, store_a: Store, report_templates: Path
) -> None:
    (report_templates / "reports/custom.html").write_text(html)
    if css is not None:
        (report_templates / "reports/custom.css").write_text(css)
    custom = ReportFormat(code="custom", template_name="reports/custom.html", page_size="letter")

    with pytest.raises(ReportRenderError, match=re.escape(named)):
        render_sample_pdf(store=store_a, report_format=custom)


def test_a_working_custom_format_renders(store_a: Store, report_templates: Path) -> None:
    (report_templates / "reports/custom.html").write_text(
        "<p>{{ doc.seller.name }} · {{ doc.lines.0.description }}</p>"
    )
    (report_templates / "reports/custom.css").write_text("@page { size: {{ page_size }} } p { color: {{ accent }} }")
    custom = ReportFormat(code="custom", template_name="reports/custom.html", page_size="A4")

    text = pages_text(render_sample_pdf(store=store_a, report_format=custom))

    assert text == ["Tienda A1 · Café molido 500 g"]


# --- Which format -----------------------------------------------------------------------------


def test_print_uses_the_store_print_report_while_it_is_active(store_a: Store) -> None:
    assert report_format_for_print(store_a).code == "invoice-letter"

    store_a.print_report = built_in("pos-ticket-80mm")
    assert report_format_for_print(store_a).code == "pos-ticket-80mm"

    ReportFormat.objects.filter(code="pos-ticket-80mm").update(is_active=False)
    store_a.print_report = built_in("pos-ticket-80mm")
    assert report_format_for_print(store_a).code == "invoice-letter"


def test_email_uses_the_active_override_else_the_print_report_else_the_default(store_a: Store) -> None:
    assert report_format_for_email(store_a).code == "invoice-letter"

    store_a.print_report = built_in("pos-ticket-80mm")
    assert report_format_for_email(store_a).code == "pos-ticket-80mm"

    store_a.email_report = built_in("invoice-a4")
    assert report_format_for_email(store_a).code == "invoice-a4"

    ReportFormat.objects.filter(code="invoice-a4").update(is_active=False)
    store_a.email_report = built_in("invoice-a4")
    assert report_format_for_email(store_a).code == "pos-ticket-80mm"

    ReportFormat.objects.filter(code="pos-ticket-80mm").update(is_active=False)
    store_a.print_report = built_in("pos-ticket-80mm")
    assert report_format_for_email(store_a).code == "invoice-letter"


# --- Caches -----------------------------------------------------------------------------------


def test_rendering_again_reuses_the_font_configuration_and_the_stylesheets(
    store_a: Store, customer_a: Customer, cashier_a: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[tuple[Any, list[Any]]] = []
    original = weasyprint.HTML.render

    def spy(self: weasyprint.HTML, font_config: Any = None, *args: Any, **options: Any) -> Any:
        used.append((font_config, list(options["stylesheets"])))
        return original(self, font_config, *args, **options)

    monkeypatch.setattr(weasyprint.HTML, "render", spy)
    invoice = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(2))

    render_invoice_pdf(invoice=invoice, report_format=built_in("invoice-letter"))
    render_invoice_pdf(invoice=invoice, report_format=built_in("invoice-letter"))
    render_invoice_pdf(invoice=invoice, report_format=built_in("pos-ticket-80mm"))

    (first_fonts, first_sheets), (second_fonts, second_sheets), (ticket_fonts, ticket_sheets) = used
    assert isinstance(first_fonts, weasyprint.text.fonts.FontConfiguration)
    assert second_fonts is first_fonts
    assert ticket_fonts is first_fonts
    assert len(first_sheets) == len(second_sheets) == 2
    assert all(again is first for again, first in zip(second_sheets, first_sheets, strict=True))
    assert ticket_sheets[0] is first_sheets[0]  # the fonts
    assert ticket_sheets[1] is not first_sheets[1]  # each format its own


def test_after_warm_up_the_built_in_formats_parse_no_stylesheet(
    store_a: Store, customer_a: Customer, english_customer: Customer, cashier_a: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoices = [
        applied_invoice(store_a, buyer, cashier_a, lines=line_data(2)) for buyer in (customer_a, english_customer)
    ]
    reports.warm_up()
    parsed: list[Any] = []

    def counting_css(*args: Any, **kwargs: Any) -> Any:
        parsed.append(kwargs)
        return weasyprint.CSS(*args, **kwargs)

    monkeypatch.setattr("invoices.reports.CSS", counting_css)

    for code in BUILT_IN_CODES:
        for invoice in invoices:
            render_invoice_pdf(invoice=invoice, report_format=built_in(code))

    assert parsed == []


def collections_during(action: Any) -> tuple[list[int], Any]:
    """The generations the cyclic garbage collector collected while ``action()`` ran, and its result."""
    generations: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            generations.append(info["generation"])

    gc.callbacks.append(record)
    try:
        result = action()
    finally:
        gc.callbacks.remove(record)
    return generations, result


def test_a_render_frees_its_garbage_in_one_young_collection_when_it_ends(store_a: Store) -> None:
    ticket = built_in("pos-ticket-80mm")
    render_sample_pdf(store=store_a, report_format=ticket)
    thresholds = gc.get_threshold()
    gc.collect()

    generations, pdf = collections_during(lambda: render_sample_pdf(store=store_a, report_format=ticket))

    assert pdf.startswith(b"%PDF")
    # No collection while WeasyPrint worked (none moved its objects to an older generation),
    # then one pass over the young generation, which freed them.
    assert generations == [0]
    assert gc.get_threshold() == thresholds
    assert gc.isenabled()


def test_a_render_leaves_a_disabled_collector_alone(store_a: Store) -> None:
    ticket = built_in("pos-ticket-80mm")
    thresholds = gc.get_threshold()
    gc.disable()
    try:
        generations, _pdf = collections_during(lambda: render_sample_pdf(store=store_a, report_format=ticket))
        assert not gc.isenabled()
    finally:
        gc.enable()

    assert generations == []
    assert gc.get_threshold() == thresholds


def test_a_large_render_still_collects_on_the_way(
    store_a: Store, customer_a: Customer, cashier_a: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "RENDER_GC_THRESHOLD", 3_000)
    invoice = applied_invoice(store_a, customer_a, cashier_a, lines=line_data(10))

    generations, _pdf = collections_during(
        lambda: render_invoice_pdf(invoice=invoice, report_format=built_in("invoice-letter"))
    )

    assert len(generations) > 1  # its peak memory stays bounded


def test_celery_worker_processes_warm_up_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(reports, "warm_up", lambda: calls.append("warm_up"))

    assert warm_up_reports in worker_process_init._live_receivers(sender=None)  # type: ignore[attr-defined]
    warm_up_reports()
    assert calls == ["warm_up"]


def test_the_warm_up_knows_the_built_in_formats() -> None:
    rows = {f.code: (f.template_name, f.page_size) for f in ReportFormat.objects.filter(code__in=BUILT_IN_FORMATS)}
    assert rows == {code: (template, str(size)) for code, (template, size) in BUILT_IN_FORMATS.items()}


# --- Screenshots ------------------------------------------------------------------------------


def test_screenshots_of_each_format(
    store_with_logo: Store,
    customer_a: Customer,
    english_customer: Customer,
    cashier_a: User,
    screenshots_dir: Path,
    tmp_path: Path,
) -> None:
    """var/screenshots/report-<format>-p<page>.png, for people to look at."""
    customer_a.legal_id = "3-101-654321"
    customer_a.save()
    notes = "Entregar en bodega, portón 3. Orden de compra OC-2291."
    short = applied_invoice(store_with_logo, customer_a, cashier_a, lines=line_data(7), notes=notes)
    long = applied_invoice(store_with_logo, english_customer, cashier_a, lines=line_data(60))
    terms = "Pago de contado o transferencia a la cuenta IBAN CR05 0152 0200 1026 2840 66.\nGracias por su compra."

    renders: dict[str, bytes] = {}
    for code in BUILT_IN_CODES:
        report_format = built_in(code)
        report_format.footer_text = terms
        renders[f"report-{code}"] = render_invoice_pdf(invoice=short, report_format=report_format)
        renders[f"report-{code}-sample-en"] = render_sample_pdf(
            store=store_with_logo, report_format=report_format, language="en"
        )
    renders["report-invoice-letter-60-lines-en"] = render_invoice_pdf(
        invoice=long, report_format=built_in("invoice-letter")
    )

    for name, pdf in renders.items():
        source = tmp_path / f"{name}.pdf"
        source.write_bytes(pdf)
        for page in range(1, len(pypdf.PdfReader(io.BytesIO(pdf)).pages) + 1):
            target = screenshots_dir / f"{name}-p{page}"
            subprocess.run(
                ["pdftoppm", "-r", "60", "-png", "-f", str(page), "-l", str(page), "-singlefile", source, target],
                check=True,
                timeout=60,
            )
            assert target.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert (screenshots_dir / "report-invoice-letter-60-lines-en-p2.png").exists()


# --- Stylesheet texts -------------------------------------------------------------------------


@pytest.fixture
def rendered_templates(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the report templates Django renders from now on, no stylesheet text kept yet."""
    reports._rendered_stylesheet.cache_clear()
    names: list[str] = []
    render = reports._render_template

    def recording(template_name: str, context: Any) -> str:
        names.append(template_name)
        return render(template_name, context)

    monkeypatch.setattr(reports, "_render_template", recording)
    yield names
    reports._rendered_stylesheet.cache_clear()  # none of the texts rendered through ``recording``


def test_a_formats_stylesheet_is_rendered_once_per_page_size_colour_and_language(
    rendered_templates: list[str],
) -> None:
    ticket, letter = built_in("pos-ticket-80mm"), built_in("invoice-letter")
    red = built_in("invoice-letter")
    red.accent_color = "#c0392b"

    texts = {
        (report_format.code, report_format.accent_color, language): reports._markup(
            reports.sample_document(Store(name="Tienda"), report_format), report_format, language
        )[1]
        for _ in range(3)
        for report_format in (ticket, letter, red)
        for language in ("es", "en")
    }

    stylesheets = [name for name in rendered_templates if name.endswith(".css")]
    assert len(stylesheets) == 6  # the first time for each format, colour and language only
    assert len([name for name in rendered_templates if name.endswith(".html")]) == 18  # the HTML every time
    assert "#c0392b" in texts[("invoice-letter", "#c0392b", "es")]
    assert "#c0392b" not in texts[("invoice-letter", letter.accent_color, "es")]
    assert '"Página "' in texts[("invoice-letter", letter.accent_color, "es")]
    assert '"Page "' in texts[("invoice-letter", letter.accent_color, "en")]


def test_a_stylesheet_template_loaded_again_is_rendered_again(rendered_templates: list[str]) -> None:
    """As after an edit in development: the template loaders' cache is reset, the template read again."""
    from django.template import engines

    ticket = built_in("pos-ticket-80mm")
    with translation.override("es"):
        first = reports._stylesheet_text(ticket)
        assert reports._stylesheet_text(ticket) is first
        for loader in engines["django"].engine.template_loaders:  # type: ignore[attr-defined]
            loader.reset()
        again = reports._stylesheet_text(ticket)

    assert again == first and again is not first
    assert rendered_templates == ["reports/pos_ticket_80mm.css"] * 2
