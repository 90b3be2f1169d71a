"""Invoices rendered to PDF with WeasyPrint.

``render_invoice_pdf`` renders a saved invoice with a report format; ``render_sample_pdf``
renders a made-up invoice of a store, for previews and for checking a format on save. Both
raise ``ReportRenderError`` with a reason in plain words when the format cannot render.

How a render goes:

1. In the caller's thread, the invoice (or the sample) becomes a ``ReportDocument``, plain data
   that the templates read. The format's HTML template (``report_format.template_name``) and its
   stylesheet (the template of the same name ending in ``.css``) are rendered by Django in the
   customer's language, so every piece of invoice data is autoescaped text.
2. The HTML and the stylesheet text go to the process's render thread, which lays them out
   with WeasyPrint and writes the PDF.

What each process keeps (built once, by ``warm_up()`` in each Celery worker process, or on the
first render): one ``FontConfiguration``, holding the DejaVu Sans faces that the project ships
in static/fonts/; one ``ReportURLFetcher``; one parsed ``weasyprint.CSS`` per stylesheet text
(that is, per format, page size, colour and language), in a small LRU.

Safety: WeasyPrint fetches only through ``ReportURLFetcher``, which serves the project's own
static fonts and report stylesheets (``static:fonts/…``), the logo of the store being printed,
read from Django's default storage (``media:store-logos/…``), and small ``data:`` URLs. Every
other URL (http, https, file, …) is refused and logged.

Time limit: a render gets ``RENDER_TIME_LIMIT_SECONDS``. The WeasyPrint work runs on one
render thread per process, and the caller waits for it with a timeout, which works the same
in a Celery prefork child (whose main thread runs the task), in a web server's request
threads and in tests; ``signal.alarm`` would work only in a main thread. One thread also
means the shared FontConfiguration (Pango and fontconfig are not thread-safe) is never used
by two renders at once, at no cost in throughput, since layout holds the GIL anyway. A thread
cannot be killed: a render that missed its deadline stops at its next URL fetch or before
writing the PDF, and renders queued behind it time out in turn, while the Celery task's own
time limits bound the worker.

Memory: a render's objects are freed as soon as it ends (``_render_garbage_freed_after``),
so a worker's memory stays level from one render to the next.
"""

import base64
import binascii
import gc
import logging
import mimetypes
import os
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

from django.contrib.staticfiles import finders
from django.core.files.storage import default_storage
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from finanzapro.queries import CompiledRead
from invoices.models import Invoice, InvoiceLine, ReportFormat
from invoices.report_html import report_html
from invoices.totals import LineAmounts, LineInput, invoice_totals
from stores.models import Store

logger = logging.getLogger(__name__)

DEFAULT_FORMAT_CODE = "invoice-letter"
# The built-in formats (migration 0003) that every worker process prepares before its first task.
BUILT_IN_FORMATS = {
    "pos-ticket-80mm": ("reports/pos_ticket_80mm.html", ReportFormat.PageSize.ROLL_80MM),
    "invoice-letter": ("reports/invoice_full_page.html", ReportFormat.PageSize.LETTER),
    "invoice-a4": ("reports/invoice_full_page.html", ReportFormat.PageSize.A4),
}

RENDER_TIME_LIMIT_SECONDS = 30.0
# The largest logo, and the largest data: URL, a render reads.
MAX_IMAGE_BYTES = 512 * 1024
# Static files WeasyPrint may read: the shipped fonts and the report stylesheets, no others.
STATIC_PATH = re.compile(r"(?:fonts|reports)/[A-Za-z0-9][A-Za-z0-9._-]*")
FONTS_STYLESHEET_URL = "static:reports/fonts.css"
# A roll ticket is laid out on a page this tall, then cut where its content ends.
ROLL_LAYOUT_HEIGHT = "3000mm"
PAGE_SIZES: dict[str, str] = {
    ReportFormat.PageSize.ROLL_80MM: f"80mm {ROLL_LAYOUT_HEIGHT}",
    ReportFormat.PageSize.LETTER: "letter",
    ReportFormat.PageSize.A4: "A4",
}
HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
DEFAULT_ACCENT = "#0b6e4f"
STYLESHEET_CACHE_SIZE = 32
# While WeasyPrint works, Python's cyclic garbage collector waits for this many new objects
# instead of its usual 2,000 (a ticket makes about 5,500, a full-page invoice about 12,000).
# See _render_garbage_freed_after.
RENDER_GC_THRESHOLD = 20_000


class ReportRenderError(Exception):
    """A format that cannot render; ``str(error)`` says why in plain words."""


class ReportRenderTimeout(ReportRenderError):
    """A render that ran out of time: on a busy machine the same render may succeed later."""


# --- Which format -------------------------------------------------------------------------


# Read for every email of a store that set no report: compiled once per connection.
_default_format_read = CompiledRead(lambda: ReportFormat.objects.filter(code=DEFAULT_FORMAT_CODE))


def _default_format() -> ReportFormat:
    found = _default_format_read()
    if not found:
        raise ReportRenderError(
            _("The default report format “%(format)s” is missing.") % {"format": DEFAULT_FORMAT_CODE}
        )
    return found[0]


def report_format_for_print(store: Store) -> ReportFormat:
    """The store's print report when it is active, else the default full-page invoice."""
    chosen = store.print_report
    if chosen is not None and chosen.is_active:
        return chosen
    return _default_format()


def report_format_for_email(store: Store) -> ReportFormat:
    """The email override when set and active, else the print report, else the default."""
    override = store.email_report
    if override is not None and override.is_active:
        return override
    return report_format_for_print(store)


# --- What the templates print ---------------------------------------------------------------


@dataclass(frozen=True)
class ReportParty:
    name: str
    legal_id: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class ReportLine:
    position: int
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate: Decimal
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class ReportTaxRate:
    """The lines taxed at one rate: their amount after discounts, and their tax."""

    rate: Decimal
    taxable: Decimal
    tax: Decimal


@dataclass(frozen=True)
class ReportDocument:
    """An invoice as the report templates read it: plain values, read from the database once
    (or made up for a sample), so the templates never query and a sample saves nothing."""

    number: str  # "" for a draft, "0" for a sample
    status: str  # an Invoice.Status value
    is_sample: bool
    issued_at: datetime
    currency: str
    seller: ReportParty
    buyer: ReportParty
    lines: tuple[ReportLine, ...]
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    notes: str = ""
    logo_name: str = ""  # the store's logo in default storage, "" for none
    taxes: tuple[ReportTaxRate, ...] = field(init=False)

    def __post_init__(self) -> None:
        by_rate: dict[Decimal, list[ReportLine]] = defaultdict(list)
        for line in self.lines:
            by_rate[line.tax_rate].append(line)
        taxes = tuple(
            ReportTaxRate(
                rate=_plain(rate),
                taxable=sum((line.subtotal - line.discount for line in lines), Decimal(0)),
                tax=sum((line.tax for line in lines), Decimal(0)),
            )
            for rate, lines in sorted(by_rate.items())
        )
        object.__setattr__(self, "taxes", taxes)

    @property
    def is_voided(self) -> bool:
        return self.status == Invoice.Status.VOIDED

    @property
    def is_draft(self) -> bool:
        return self.status == Invoice.Status.DRAFT

    @property
    def logo_url(self) -> str:
        return f"media:{quote(self.logo_name)}" if self.logo_name else ""


def _plain(number: Decimal) -> Decimal:
    """``number`` without trailing zeros or an exponent: 2.000 → 2, 1.500 → 1.5, 100.000 → 100."""
    normal = number.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal


def _seller(store: Store, report_format: ReportFormat) -> tuple[ReportParty, str]:
    """The store as the report prints it, and its logo's name in storage ("" for none)."""
    party = ReportParty(
        name=store.name, legal_id=store.legal_id, address=store.address, phone=store.phone, email=store.email
    )
    return party, str(store.logo.name) if report_format.show_logo and store.logo else ""


def _line(position: int, description: str, line: LineInput, amounts: LineAmounts) -> ReportLine:
    return ReportLine(
        position=position,
        description=description,
        quantity=_plain(line.quantity),
        unit_price=line.unit_price,
        discount_percent=_plain(line.discount_percent),
        tax_rate=_plain(line.tax_rate),
        subtotal=amounts.subtotal,
        discount=amounts.discount,
        tax=amounts.tax,
        total=amounts.total,
    )


# An invoice's lines, read for every PDF of it (each email's): compiled once per connection.
_lines_of = CompiledRead(lambda invoice_id: InvoiceLine.objects.filter(invoice_id=invoice_id).order_by("position"))


def invoice_document(invoice: Invoice, report_format: ReportFormat) -> ReportDocument:
    seller, logo_name = _seller(invoice.store, report_format)
    customer = invoice.customer
    lines = tuple(
        _line(
            line.position,
            line.description,
            LineInput(line.quantity, line.unit_price, line.discount_percent, line.tax_rate),
            LineAmounts(subtotal=line.subtotal, discount=line.discount, tax=line.tax, total=line.total),
        )
        for line in _lines_of(invoice.pk)
    )
    return ReportDocument(
        number="" if invoice.number is None else str(invoice.number),
        status=invoice.status,
        is_sample=False,
        issued_at=invoice.applied_at or invoice.created_at,
        currency=invoice.currency,
        seller=seller,
        buyer=ReportParty(name=customer.name, legal_id=customer.legal_id, email=customer.emails),
        lines=lines,
        subtotal=invoice.subtotal,
        discount=invoice.discount_total,
        tax=invoice.tax_total,
        total=invoice.total,
        notes=invoice.notes,
        logo_name=logo_name,
    )


# Product names are the store's data, not the interface's: they stay Spanish in both languages.
SAMPLE_LINES = (
    ("Café molido 500 g", LineInput(Decimal(2), Decimal(4500), Decimal(0), Decimal(13))),
    ("Queso Turrialba 1 kg", LineInput(Decimal(1), Decimal(6400), Decimal(10), Decimal(1))),
    ("Servicio de entrega a domicilio", LineInput(Decimal(1), Decimal(2500), Decimal(0), Decimal(13))),
)


def sample_document(store: Store, report_format: ReportFormat) -> ReportDocument:
    """A made-up invoice of ``store`` (which may be unsaved) in the active language; no query."""
    currency = store.currency or Store.Currency.CRC
    totals = invoice_totals((line for _description, line in SAMPLE_LINES), currency)
    seller, logo_name = _seller(store, report_format)
    lines = tuple(
        _line(position, description, line, amounts)
        for position, ((description, line), amounts) in enumerate(zip(SAMPLE_LINES, totals.lines, strict=True), 1)
    )
    return ReportDocument(
        number="0",
        status=Invoice.Status.APPLIED,
        is_sample=True,
        issued_at=timezone.now(),
        currency=currency,
        seller=seller,
        buyer=ReportParty(name=_("Sample customer"), legal_id="1-0000-0000", email="cliente@example.com"),
        lines=lines,
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax=totals.tax,
        total=totals.total,
        logo_name=logo_name,
    )


# --- Markup ---------------------------------------------------------------------------------


class _TemplateFailed(Exception):
    """A report template that did not render; turned into a ReportRenderError in the caller's language."""

    def __init__(self, template_name: str, cause: Exception) -> None:
        super().__init__(template_name)
        self.template_name = template_name
        self.cause = cause


def _css_string(text: str) -> str:
    """``text`` as a CSS string literal."""
    escaped = "".join(ch if ch.isprintable() and ch not in '"\\' else f"\\{ord(ch):x} " for ch in text)
    return f'"{escaped}"'


def _page_counter_content() -> str:
    """The CSS ``content`` of "Page 2 of 3" in the active language, e.g.
    ``"Página " counter(page) " de " counter(pages)``."""
    parts = re.split(r"%\((number|pages)\)s", _("Page %(number)s of %(pages)s"))
    content = []
    for index, part in enumerate(parts):
        if index % 2:
            content.append("counter(page)" if part == "number" else "counter(pages)")
        elif part:
            content.append(_css_string(part))
    return " ".join(content)


def _stylesheet_template_name(template_name: str) -> str:
    return template_name.removesuffix(".html") + ".css"


def _render_template(template_name: str, context: Mapping[str, Any]) -> str:
    try:
        return get_template(template_name).render(dict(context))
    except Exception as exc:
        raise _TemplateFailed(template_name, exc) from exc


def _stylesheet_text(report_format: ReportFormat) -> str:
    accent = report_format.accent_color if HEX_COLOUR.fullmatch(report_format.accent_color or "") else DEFAULT_ACCENT
    page_size = PAGE_SIZES.get(report_format.page_size, PAGE_SIZES[ReportFormat.PageSize.LETTER])
    template_name = _stylesheet_template_name(report_format.template_name)
    try:
        template = get_template(template_name)
    except Exception as exc:
        raise _TemplateFailed(template_name, exc) from exc
    # Django's backend wraps the loader's template anew on every get_template(); another
    # backend's template keys only itself (rendered every time, as before).
    loaded: Any = getattr(template, "template", template)
    return _rendered_stylesheet(
        template_name, loaded, translation.get_language(), page_size, accent, _page_counter_content()
    )


@lru_cache(maxsize=STYLESHEET_CACHE_SIZE)
def _rendered_stylesheet(
    template_name: str, loaded: Any, language: str | None, page_size: str, accent: str, page_counter: str
) -> str:
    """The stylesheet text, kept for the latest STYLESHEET_CACHE_SIZE keys: rendering the ticket's
    stylesheet template took 2.0 ms of a 77 ms render, for a text that only changes with the
    format's page size and colour and the language. ``loaded`` (the template object Django's
    loader keeps, so an edited template is rendered again) and ``language`` (the active one)
    are only part of the key."""
    return _render_template(template_name, {"page_size": page_size, "accent": accent, "page_counter": page_counter})


def _markup(document: ReportDocument, report_format: ReportFormat, language: str) -> tuple[str, str]:
    """The HTML and the stylesheet text of ``document``, in ``language``."""
    with translation.override(language):
        context = {
            "doc": document,
            "report_format": report_format,
            "footer_text": report_format.footer_text,
            "language": language,
        }
        return _render_template(report_format.template_name, context), _stylesheet_text(report_format)


def _template_problem(failure: _TemplateFailed) -> ReportRenderError:
    cause = failure.cause
    if isinstance(cause, TemplateDoesNotExist):
        missing = str(cause) or failure.template_name
        return ReportRenderError(_("The template “%(template)s” does not exist.") % {"template": missing})
    reason = str(cause) or type(cause).__name__
    if isinstance(cause, TemplateSyntaxError):
        return ReportRenderError(
            _("The template “%(template)s” has an error: %(reason)s")
            % {"template": failure.template_name, "reason": reason}
        )
    return ReportRenderError(
        _("The template “%(template)s” could not be rendered: %(reason)s")
        % {"template": failure.template_name, "reason": reason}
    )


# --- Fetching -------------------------------------------------------------------------------


class _RenderTimedOut(FatalURLFetchingError):
    """Raised inside WeasyPrint to stop a render whose caller stopped waiting.

    WeasyPrint swallows ordinary exceptions from a fetcher (the resource is skipped); this
    one derives from its FatalURLFetchingError, which stops the render."""


@dataclass(frozen=True)
class _Job:
    media_names: frozenset[str]
    deadline: float  # time.monotonic()


_current_job: ContextVar[_Job | None] = ContextVar("report_render_job", default=None)


def _check_deadline() -> None:
    job = _current_job.get()
    if job is not None and time.monotonic() > job.deadline:
        raise _RenderTimedOut("the render took too long")


def _url_for_log(url: str) -> str:
    return url if len(url) <= 200 else f"{url[:200]}… ({len(url)} characters)"


class ReportURLFetcher(URLFetcher):
    """The only way WeasyPrint reads anything: the project's fonts and report stylesheets,
    the logo of the store being printed, and small data: URLs. Everything else is refused
    (WeasyPrint then skips the resource) and logged."""

    def __init__(self) -> None:
        super().__init__(allow_redirects=False)

    @contextmanager
    def serving(self, *, media_names: Iterable[str] = (), deadline: float | None = None) -> Iterator[None]:
        """Serve ``media_names`` from default storage, until ``deadline``, in this thread."""
        limit = time.monotonic() + RENDER_TIME_LIMIT_SECONDS if deadline is None else deadline
        token = _current_job.set(_Job(frozenset(media_names), limit))
        try:
            yield
        finally:
            _current_job.reset(token)

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        _check_deadline()
        scheme, _colon, rest = url.partition(":")
        scheme = scheme.lower()
        if scheme == "static":
            return self._static(url, unquote(rest))
        if scheme == "media":
            return self._media(url, unquote(rest))
        if scheme == "data":
            return self._data(url)
        raise self._refuse(url, "only the project's static files and the store's logo are served")

    def _refuse(self, url: str, reason: str) -> ValueError:
        logger.warning("Report render: refused to fetch %s (%s)", _url_for_log(url), reason)
        return ValueError(f"refused: {reason}")

    def _response(self, url: str, body: bytes, name: str) -> URLFetcherResponse:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body, headers={"Content-Type": content_type})

    def _static(self, url: str, path: str) -> URLFetcherResponse:
        if not STATIC_PATH.fullmatch(path):
            raise self._refuse(url, "not a report font or stylesheet")
        found = finders.find(path)
        if not isinstance(found, str):
            raise self._refuse(url, "no such static file")
        with open(found, "rb") as file:
            return self._response(url, file.read(), path)

    def _media(self, url: str, name: str) -> URLFetcherResponse:
        job = _current_job.get()
        if job is None or name not in job.media_names:
            raise self._refuse(url, "not the logo of the store being printed")
        try:
            if default_storage.size(name) > MAX_IMAGE_BYTES:
                raise self._refuse(url, f"larger than {MAX_IMAGE_BYTES // 1024} KB")
            with default_storage.open(name, "rb") as file:
                body = file.read()
        except OSError as exc:
            raise self._refuse(url, f"cannot be read: {exc}") from exc
        return self._response(url, body, name)

    def _data(self, url: str) -> URLFetcherResponse:
        # Base64 takes 4 characters for 3 bytes; the header is short.
        if len(url) > MAX_IMAGE_BYTES * 4 // 3 + 256:
            raise self._refuse(url, f"data: URL larger than {MAX_IMAGE_BYTES // 1024} KB")
        header, comma, payload = url[len("data:") :].partition(",")
        if not comma:
            raise self._refuse(url, "malformed data: URL")
        media_type, *parameters = header.split(";")
        try:
            raw = unquote_to_bytes(payload)
            body = base64.b64decode(raw) if parameters[-1:] == ["base64"] else raw
        except (binascii.Error, ValueError) as exc:
            raise self._refuse(url, "malformed data: URL") from exc
        if len(body) > MAX_IMAGE_BYTES:
            raise self._refuse(url, f"data: URL larger than {MAX_IMAGE_BYTES // 1024} KB")
        return URLFetcherResponse(url, body, headers={"Content-Type": media_type or "text/plain"})


# --- The process's renderer -----------------------------------------------------------------


class _Renderer:
    """What a process keeps between renders. Its WeasyPrint objects are used only on its render thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.font_config = FontConfiguration()
        self.url_fetcher = ReportURLFetcher()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-render")
        self._fonts: CSS | None = None
        self._stylesheets: OrderedDict[str, CSS] = OrderedDict()

    def fonts_stylesheet(self) -> CSS:
        if self._fonts is None:
            self._fonts = CSS(url=FONTS_STYLESHEET_URL, url_fetcher=self.url_fetcher, font_config=self.font_config)
        return self._fonts

    def stylesheet(self, text: str) -> CSS:
        """The parsed ``text``, parsed once; the least recently used is dropped past the cache size."""
        css = self._stylesheets.get(text)
        if css is None:
            css = CSS(string=text, url_fetcher=self.url_fetcher, font_config=self.font_config)
            self._stylesheets[text] = css
            while len(self._stylesheets) > STYLESHEET_CACHE_SIZE:
                self._stylesheets.popitem(last=False)
        else:
            self._stylesheets.move_to_end(text)
        return css

    def write_pdf(self, html: str, stylesheet: str, *, roll: bool, job: _Job) -> bytes:
        """Runs on the render thread."""
        token = _current_job.set(job)
        try:
            with _render_garbage_freed_after():
                # The document is released when _write_pdf returns, before the collection.
                return self._write_pdf(html, stylesheet, roll=roll)
        finally:
            _current_job.reset(token)

    def _write_pdf(self, html: str, stylesheet: str, *, roll: bool) -> bytes:
        _check_deadline()
        document = report_html(html, self.url_fetcher).render(
            font_config=self.font_config, stylesheets=[self.fonts_stylesheet(), self.stylesheet(stylesheet)]
        )
        if roll:
            _cut_roll(document)
        _check_deadline()
        pdf: bytes = document.write_pdf()
        return pdf


@contextmanager
def _render_garbage_freed_after() -> Iterator[None]:
    """Lets a render's objects die young, and frees them in one pass when it ends.

    WeasyPrint's boxes, styles and Pango layouts form reference cycles, so only the cyclic
    collector frees them. At its usual threshold it runs a few times during a render, while
    they are all still in use, and moves them to the older generations; they become garbage
    there, holding their Pango and HarfBuzz memory, until a rare full collection, and the
    process's memory rises by megabytes before it levels off. With the threshold raised for
    the render, an ordinary document makes no collection, and a single young-generation pass
    frees all of its cycles once it is written; a very large one still gets collections every
    RENDER_GC_THRESHOLD objects, so its peak memory stays bounded. Fewer passes over live
    objects also make the render a little faster.

    The threshold is process-wide: another thread of the process allocating meanwhile (a
    web server's) gets its cycles freed at the same end-of-render pass. A collector that is
    disabled, or whose threshold was set higher, is left alone.
    """
    thresholds = gc.get_threshold()
    if not gc.isenabled() or not 0 < thresholds[0] < RENDER_GC_THRESHOLD:
        yield
        return
    gc.set_threshold(RENDER_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect(0)


def _cut_roll(document: Any) -> None:
    """Ends a roll ticket's last page where its content ends (WeasyPrint has no automatic page
    height): the page is laid out top-down, so a shorter page only loses empty paper."""
    page = document.pages[-1]
    page_box = page._page_box
    root = page_box.children[0]  # the <html> box; margin boxes come after it
    bottom = root.position_y + root.margin_height() + page_box.margin_bottom
    page.height = min(page.height, bottom)


_renderer_lock = threading.Lock()
_renderer_instance: _Renderer | None = None
# A renderer inherited through fork is never used (its thread did not survive the fork, and
# its font files are shared with the parent) nor freed (freeing would delete the parent's
# temporary font folder): it is kept here.
_inherited: list[_Renderer] = []


def _renderer() -> _Renderer:
    global _renderer_instance
    with _renderer_lock:
        if _renderer_instance is not None and _renderer_instance.pid != os.getpid():
            _inherited.append(_renderer_instance)
            _renderer_instance = None
        if _renderer_instance is None:
            _renderer_instance = _Renderer()
        return _renderer_instance


def report_url_fetcher() -> ReportURLFetcher:
    """The process's URL fetcher."""
    return _renderer().url_fetcher


def _run(renderer: _Renderer, html: str, stylesheet: str, *, roll: bool, media_names: Iterable[str]) -> bytes:
    limit = RENDER_TIME_LIMIT_SECONDS
    job = _Job(frozenset(media_names), time.monotonic() + limit)
    future: Future[bytes] = renderer.executor.submit(renderer.write_pdf, html, stylesheet, roll=roll, job=job)
    try:
        # Only the render's own errors become ReportRenderError; anything raised in this
        # thread while it waits (Celery's SoftTimeLimitExceeded) goes up unchanged.
        error = future.exception(timeout=limit)
    except BaseException as exc:
        future.cancel()  # when it has not started yet; otherwise its deadline stops it
        if isinstance(exc, FutureTimeoutError):
            raise _timed_out(limit) from exc
        raise
    if error is None:
        return future.result()
    if isinstance(error, _RenderTimedOut):
        raise _timed_out(limit) from error
    logger.error("Report render: WeasyPrint failed", exc_info=error)
    raise ReportRenderError(
        _("The PDF could not be generated: %(reason)s") % {"reason": str(error) or type(error).__name__}
    ) from error


def _timed_out(limit: float) -> ReportRenderTimeout:
    logger.warning("Report render: gave up after %s seconds", limit)
    return ReportRenderTimeout(
        _("The PDF took longer than %(seconds)s seconds to generate.") % {"seconds": f"{limit:g}"}
    )


def _render(document: ReportDocument, report_format: ReportFormat, language: str) -> bytes:
    try:
        html, stylesheet = _markup(document, report_format, language)
    except _TemplateFailed as failure:
        raise _template_problem(failure) from failure.cause
    roll = report_format.page_size == ReportFormat.PageSize.ROLL_80MM
    media = [document.logo_name] if document.logo_name else []
    return _run(_renderer(), html, stylesheet, roll=roll, media_names=media)


def render_invoice_pdf(*, invoice: Invoice, report_format: ReportFormat) -> bytes:
    """``invoice`` as a PDF with ``report_format``, in its customer's language."""
    return _render(invoice_document(invoice, report_format), report_format, invoice.customer.language)


def render_sample_pdf(*, store: Store, report_format: ReportFormat, language: str = "es") -> bytes:
    """A made-up invoice of ``store`` with ``report_format``: nothing is saved, and ``store``
    and ``report_format`` may be unsaved."""
    with translation.override(language):
        document = sample_document(store, report_format)
    return _render(document, report_format, language)


# --- Warm-up --------------------------------------------------------------------------------

_PRIMER = '<p style="font-weight: bold">Café ₡</p><p>Café ₡</p>'


def warm_up() -> None:
    """Builds this process's FontConfiguration, URL fetcher and the stylesheets of the built-in
    formats in both languages, and lays out a line of text so Pango has loaded the fonts.

    Reads no database (it runs while a Celery worker process starts, see InvoicesConfig);
    a built-in format whose colour support changed gets its stylesheet on its first render."""
    renderer = _renderer()
    stylesheets = []
    for language in ("es", "en"):
        for code, (template_name, page_size) in BUILT_IN_FORMATS.items():
            report_format = ReportFormat(code=code, template_name=template_name, page_size=page_size)
            try:
                with translation.override(language):
                    stylesheets.append(_stylesheet_text(report_format))
            except _TemplateFailed as failure:
                logger.warning("Report warm-up: %s", _template_problem(failure))

    def build() -> None:
        for text in stylesheets:
            renderer.stylesheet(text)
        HTML(string=_PRIMER, url_fetcher=renderer.url_fetcher).render(
            font_config=renderer.font_config, stylesheets=[renderer.fonts_stylesheet()]
        )

    renderer.executor.submit(build).result(timeout=RENDER_TIME_LIMIT_SECONDS)
    logger.debug("Report renderer of process %s ready: %s stylesheets", os.getpid(), len(stylesheets))
