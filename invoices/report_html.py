"""The reports' HTML as the tree WeasyPrint lays out, read without tinyhtml5 when it can be.

WeasyPrint reads HTML with tinyhtml5, a pure-Python HTML5 parser: 4.4 ms of a 77 ms ticket
render on the bench machine, 9.1 ms of a full page's 192. The report templates write plain,
well-formed HTML (every element closed, nothing that the HTML5 tree construction would close,
move or wrap), which the standard library's ``html.parser`` reads into the same tree in a fifth
of the time. Anything else goes to tinyhtml5, so the tree is the one WeasyPrint would have
built either way: an element outside ``SIMPLE_ELEMENTS`` (tables without their row groups,
scripts, forms, SVG…), an end tag that does not close the innermost open element, an element
that HTML5 closes by opening another one (a ``div`` in a ``p``, an ``li`` in an ``li``), text
where HTML5 would move it, or a document that is not one ``html`` with a ``head`` and a ``body``.
tests/invoices/test_report_html.py compares both trees for every built-in format.
"""

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import cssselect2
from weasyprint import HTML
from weasyprint.urls import URLFetcher

VOID_ELEMENTS = frozenset({"br", "col", "hr", "img", "meta", "wbr"})
# Elements whose HTML5 tree construction, when each is closed where it should be, is plain
# nesting (the "in body" insertion mode's ordinary elements, and tables written in full).
SIMPLE_ELEMENTS = VOID_ELEMENTS | {
    "a", "abbr", "address", "article", "aside", "b", "blockquote", "body", "caption", "cite", "code",
    "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "head", "header", "html", "i", "ins", "kbd", "li", "main", "mark", "nav", "ol",
    "p", "q", "s", "samp", "section", "small", "span", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "title", "tr", "u", "ul", "var",
}  # fmt: skip
# Opening one of these closes an open p (HTML5 "in body": "close a p element").
CLOSES_P = frozenset({
    "address", "article", "aside", "blockquote", "div", "dl", "figcaption", "figure", "footer", "h1",
    "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "section", "table", "ul",
})  # fmt: skip
# Opening one of these inside another of its family closes the open one (or is misnested).
FAMILIES = {
    "li": {"li"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
    "a": {"a"},
    "td": {"td", "th"},
    "th": {"td", "th"},
    "tr": {"tr"},
}
# Where HTML5 allows only row groups, rows and cells (text there is moved out of the table).
TABLE_PARTS = frozenset({"table", "thead", "tbody", "tfoot", "tr"})
ALLOWED_CHILDREN = {
    "html": {"head", "body"},
    "table": {"caption", "colgroup", "thead", "tbody", "tfoot"},
    "thead": {"tr"},
    "tbody": {"tr"},
    "tfoot": {"tr"},
    "tr": {"td", "th"},
    "colgroup": {"col"},
    "head": {"meta", "title"},
}
PARENTS = {
    "tr": {"thead", "tbody", "tfoot"},
    "td": {"tr"},
    "th": {"tr"},
    "col": {"colgroup"},
    **dict.fromkeys(("caption", "colgroup", "thead", "tbody", "tfoot"), frozenset({"table"})),
    **dict.fromkeys(("head", "body"), frozenset({"html"})),
    **dict.fromkeys(("meta", "title"), frozenset({"head"})),
}
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


class _NotSimple(Exception):
    """The HTML is not one that html.parser reads into the HTML5 tree."""


class _TreeReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = ET.TreeBuilder()
        self.open: list[str] = []
        self.closed_html = False
        self.started = False
        self.seen: set[str] = set()
        self.after_body: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SIMPLE_ELEMENTS or self.closed_html:
            raise _NotSimple(tag)
        parent = self.open[-1] if self.open else None
        if parent is None and (tag != "html" or self.started):
            raise _NotSimple(tag)
        if parent in ALLOWED_CHILDREN and tag not in ALLOWED_CHILDREN[parent]:
            raise _NotSimple(f"{tag} in {parent}")
        if tag in PARENTS and parent not in PARENTS[tag]:
            raise _NotSimple(f"{tag} in {parent}")
        if tag in HEADINGS and HEADINGS & set(self.open):
            raise _NotSimple(f"{tag} in a heading")
        if tag in CLOSES_P and "p" in self.open:
            raise _NotSimple(f"{tag} in p")
        if tag in FAMILIES and FAMILIES[tag] & set(self.open):
            raise _NotSimple(f"{tag} in {tag}")
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, "" if value is None else value)  # HTML5 keeps the first of a repeated one
        self.started = True
        self.seen.add(tag)
        self.builder.start(tag, values)
        if tag in VOID_ELEMENTS:
            self.builder.end(tag)
        else:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            raise _NotSimple(f"<{tag}/>")  # HTML5 ignores the slash: the element stays open
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise _NotSimple(f"</{tag}>")
        self.open.pop()
        self.builder.end(tag)
        if tag == "html":
            self.closed_html = True

    def handle_data(self, data: str) -> None:
        current = self.open[-1] if self.open else None
        if data.isspace():
            if (current is None and not self.closed_html) or (current == "html" and "head" not in self.seen):
                return  # before <head>, HTML5 drops it
            if current is None or (current == "html" and "body" in self.seen):
                self.after_body.append(data)  # after </body>, HTML5 adds it to the body
                return
            self.builder.data(data)  # in <head>, after it, or in the body (tables included)
            return
        if current is None or current in {"html", "head"} | TABLE_PARTS:
            raise _NotSimple("text outside the body's elements")
        self.builder.data(data)

    def handle_comment(self, data: str) -> None:
        raise _NotSimple("comment")  # tinyhtml5 keeps it in the tree

    def handle_pi(self, data: str) -> None:
        raise _NotSimple("processing instruction")

    def unknown_decl(self, data: str) -> None:
        raise _NotSimple("CDATA")


def _simple_tree(html: str) -> ET.Element:
    if "\x00" in html:
        raise _NotSimple("NUL")
    reader = _TreeReader()
    reader.feed(html.replace("\r\n", "\n").replace("\r", "\n"))  # as HTML5 reads line breaks
    reader.close()
    if reader.open or not reader.closed_html:
        raise _NotSimple("unclosed elements")
    root: ET.Element = reader.builder.close()
    children = [child.tag for child in root]
    if children != ["head", "body"]:
        raise _NotSimple(f"html holds {children}")
    if reader.after_body:
        body = root[1]
        space = "".join(reader.after_body)
        if len(body):
            body[-1].tail = (body[-1].tail or "") + space
        else:
            body.text = (body.text or "") + space
    return root


def report_html(html: str, url_fetcher: URLFetcher) -> HTML:
    """``HTML(string=html, url_fetcher=url_fetcher)``, its tree read by html.parser when it can."""
    try:
        root = _simple_tree(html)
    except _NotSimple:
        return HTML(string=html, url_fetcher=url_fetcher)
    return _TreeHTML(root, url_fetcher)


class _TreeHTML(HTML):
    """WeasyPrint's HTML of a tree read already: what ``HTML.__init__`` sets, from it."""

    def __init__(self, root: ET.Element, url_fetcher: URLFetcher) -> None:
        # Not HTML.__init__: it would read the HTML again.
        self.base_url = None  # as for a string: the simple elements have no <base>
        self.url_fetcher = url_fetcher
        self.media_type = "print"
        self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
        self.etree_element = self.wrapper_element.etree_element
