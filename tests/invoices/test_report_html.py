"""The reports' HTML read by html.parser into the tree tinyhtml5 (WeasyPrint's reader) builds,
and anything html.parser would read otherwise left to tinyhtml5."""

import io
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pypdf
import pytest
import tinyhtml5
from weasyprint import HTML

from accounts.models import User
from invoices import reports
from invoices.models import Customer, InvoiceSequence, ReportFormat
from invoices.report_html import report_html
from invoices.services import LineData, invoice_apply, invoice_create
from stores.models import Store
from tests.invoices.test_reports import line_data, store_with_logo
from tests.invoices.test_reports import media_root as media_root

pytestmark = pytest.mark.django_db
__all__ = ["media_root", "store_with_logo"]  # fixtures


def shape(element: ET.Element) -> list[tuple[Any, ...]]:
    """Every element in document order with its depth, attributes, text and tail."""
    found: list[tuple[Any, ...]] = []

    def walk(node: ET.Element, depth: int) -> None:
        found.append((depth, node.tag, dict(node.attrib), node.text, node.tail))
        for child in node:
            walk(child, depth + 1)

    walk(element, 0)
    return found


def html5_tree(html: str) -> ET.Element:
    """The tree of WeasyPrint's own reading."""
    return tinyhtml5.parse(html, namespace_html_elements=False)  # type: ignore[no-any-return]


def read(html: str) -> tuple[HTML, ET.Element]:
    document = report_html(html, reports.report_url_fetcher())
    return document, document.etree_element


@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("code", list(reports.BUILT_IN_FORMATS))
def test_each_built_in_format_reads_into_the_html5_tree_without_tinyhtml5(
    code: str,
    language: str,
    store_with_logo: Store,
    customer_a: Customer,
    cashier_a: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    InvoiceSequence.objects.get_or_create(store=store_with_logo, defaults={"last_number": 99})
    notes = "Entregar en bodega\r\nHorario: 8 & 5 <tarde> “urgente”\n\n\tFin"
    draft = invoice_create(
        store=store_with_logo, customer=customer_a, created_by=cashier_a, lines=line_data(7), notes=notes
    )
    invoice = invoice_apply(invoice=draft, applied_by=cashier_a)
    report_format = ReportFormat.objects.get(code=code)
    report_format.footer_text = "Gracias\r\npor su compra & vuelva"
    report_format.show_logo = True
    documents = [
        reports.invoice_document(invoice, report_format),
        reports.sample_document(store_with_logo, report_format),
    ]
    for document in documents:
        html, _stylesheet = reports._markup(document, report_format, language)
        assert "<img" in html
        expected = shape(html5_tree(html))

        def unused(*args: object, **kwargs: object) -> None:
            raise AssertionError("tinyhtml5 read a report")

        monkeypatch.setattr(tinyhtml5, "parse", unused)
        _document, tree = read(html)
        monkeypatch.undo()

        assert shape(tree) == expected


@pytest.mark.parametrize(
    "body",
    [
        "<p>a <div>block</div> b</p>",  # a div closes the p
        "<ul><li>one<li>two</li></ul>",  # the end tag of the first item is implied
        "<ul><li>one<ul><li>two</li></ul></li></ul><p>a <b>b <i>c</b> d</i></p>",  # misnested
        "<table><tr><td>a</td></tr></table>",  # HTML5 adds the tbody
        "<table><tbody><tr><td>a</td></tr>text</tbody></table>",  # text moved before the table
        "<p>a<span/>b</p>",  # the slash is ignored: the span holds b
        "<h1>a<h2>b</h2></h1>",  # a heading closes the open one
        "<p>a</p></p>",  # a lone end tag makes an empty p
        "<pre>\nkept?</pre>",  # HTML5 drops the first line break
        "<script>a < b</script><p>x</p>",
        "<svg><rect/></svg>",
        "<p>a\x00b</p>",
        "<p><![CDATA[x]]></p>",
        "<p>a<!-- note -->b</p>",
    ],
)
def test_html_that_html5_reads_otherwise_goes_to_tinyhtml5(body: str) -> None:
    html = f"<!DOCTYPE html>\n<html><head><title>t</title></head><body>{body}</body></html>\n"

    document, tree = read(html)

    assert type(document) is HTML
    assert shape(tree) == shape(html5_tree(html))


@pytest.mark.parametrize(
    "html",
    [
        "<p>no html element</p>",
        "<html><body><p>no head</p></body></html>",
        "<html><head></head><body><p>not closed</body></html>",
        "<html><head></head><body></body></html><p>after</p>",
        "<html><head></head>text<body></body></html>",
    ],
)
def test_a_document_that_is_not_one_html_with_its_head_and_body_goes_to_tinyhtml5(html: str) -> None:
    document, tree = read(html)

    assert type(document) is HTML
    assert shape(tree) == shape(html5_tree(html))


def test_plain_html_is_read_by_html_parser_into_the_same_tree() -> None:
    html = (
        '<!DOCTYPE html>\n<html lang="es">\n<head>\n<meta charset="utf-8">\n<title>Factura &amp; más</title>\n'
        '</head>\n<body>\n<section class="a" class="b"><p>Hola &lt;José&gt; &quot;&#8364;&quot;<br>'
        '<img src="data:," alt>fin</p>\n<table><thead><tr><th>x</th></tr></thead>\n<tbody>\n<tr><td>1</td>'
        "</tr>\n</tbody></table></section>\n</body>\n</html>\n\n"
    )

    document, tree = read(html)

    assert type(document) is not HTML
    assert shape(tree) == shape(html5_tree(html))


def test_a_report_renders_from_the_tree_html_parser_read(
    store_a: Store, customer_a: Customer, cashier_a: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unused(*args: object, **kwargs: object) -> None:
        raise AssertionError("tinyhtml5 read a report")

    monkeypatch.setattr(tinyhtml5, "parse", unused)
    InvoiceSequence.objects.get_or_create(store=store_a, defaults={"last_number": 4820})
    lines = [LineData("Café molido 500 g", Decimal(2), Decimal(4500), tax_rate=Decimal(13))]
    draft = invoice_create(store=store_a, customer=customer_a, created_by=cashier_a, lines=lines)
    invoice = invoice_apply(invoice=draft, applied_by=cashier_a)

    for code in reports.BUILT_IN_FORMATS:
        pdf = reports.render_invoice_pdf(invoice=invoice, report_format=ReportFormat.objects.get(code=code))
        text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
        assert "4821" in text and "Café molido 500 g" in text and customer_a.name in text
