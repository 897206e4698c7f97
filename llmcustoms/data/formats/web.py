"""The main content of a web page (and of an EPUB chapter), read with selectolax (Lexbor engine; MIT).

Navigation, scripts, styles, forms, cookie banners, sidebars, headers and footers are removed; the
page's ``<article>`` or ``<main>`` is kept when it has one, else its body. What is left becomes
paragraphs: one per heading, paragraph, list item or table row (a row as "Header: cell; …").
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from llmcustoms.data.formats.types import ExtractedText, ExtractError, paragraphs_text, plural

#: Elements never read, by what they are (counted in ``dropped`` under the name given).
_DROP_TAGS = {
    "script": "script", "style": "style", "noscript": "script", "template": "script", "svg": "image",
    "canvas": "image", "iframe": "embedded frame", "object": "embedded frame", "form": "form",
    "button": "form", "select": "form", "nav": "navigation block", "aside": "sidebar", "footer": "footer",
    "header": "page header", "dialog": "pop-up",
}
_ROLE_KINDS = {"navigation": "navigation block", "banner": "page header", "contentinfo": "footer",
               "complementary": "sidebar", "dialog": "pop-up", "alertdialog": "pop-up", "search": "form"}
#: Class or id words of the page chrome: cookie notices, menus, share buttons, adverts.
_CHROME = re.compile(
    r"(?:^|[\s_-])(cookie|consent|gdpr|cmp|nav|navbar|menu|breadcrumbs?|sidebar|footer|masthead|newsletter|"
    r"subscribe|share|social|advert|ads?|promo|popup|modal|related|comments?|skip-link)(?:$|[\s_-])",
    re.IGNORECASE,
)
_CHROME_KIND = {"cookie": "cookie banner", "consent": "cookie banner", "gdpr": "cookie banner",
                "cmp": "cookie banner", "footer": "footer", "sidebar": "sidebar", "comments": "comments block",
                "comment": "comments block"}
_BLOCKS = frozenset({"p", "div", "section", "article", "main", "li", "dt", "dd", "blockquote", "pre", "figcaption",
                     "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol", "dl", "body", "br", "hr",
                     "caption", "address", "details", "summary"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def _chrome_kind(node: Any) -> str | None:
    """Why a node is page chrome ('cookie banner', 'navigation block', …), or None when it is content."""
    tag = node.tag
    if tag in _DROP_TAGS:
        # A <header> inside an article is the article's own title block: keep it.
        if tag == "header" and node.parent is not None and node.parent.tag in ("article", "main", "section"):
            return None
        return _DROP_TAGS[tag]
    attributes = node.attributes
    role = (attributes.get("role") or "").lower()
    if role in _ROLE_KINDS:
        return _ROLE_KINDS[role]
    if attributes.get("hidden") is not None or attributes.get("aria-hidden") == "true":
        return "hidden block"
    names = f"{attributes.get('class') or ''} {attributes.get('id') or ''}"
    match = _CHROME.search(names)
    if match and tag not in ("body", "html", "main", "article"):
        word = match.group(1).lower()
        return _CHROME_KIND.get(word, "navigation block")
    return None


def _remove_chrome(root: Any, dropped: Counter[str]) -> None:
    """Remove the page chrome under ``root`` (top down: what is inside a removed block is not counted)."""
    doomed: list[Any] = []
    stack = [root]
    while stack:
        node = stack.pop()
        for child in node.iter():
            kind = _chrome_kind(child)
            if kind is None:
                stack.append(child)
            else:
                doomed.append(child)
                dropped[kind] += 1
    for node in doomed:
        node.decompose()


def _blocks(root: Any) -> list[str]:
    """The text of ``root`` as paragraphs, in document order (an explicit stack: no recursion limit)."""
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = " ".join("".join(current).split())
        if text:
            paragraphs.append(text)
        current.clear()

    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag
        if closing:
            if tag in _BLOCKS:
                flush()
            continue
        if tag == "-text":
            current.append(node.text(deep=False) or "")
            continue
        if tag == "-comment" or tag in ("head", "title", "meta", "link"):
            continue
        if tag in _BLOCKS:
            flush()
        if tag == "tr":
            cells = [" ".join(cell.text().split()) for cell in node.iter() if cell.tag in ("td", "th")]
            row = _row_sentence(cells, node)
            if row:
                paragraphs.append(row)
            continue
        if tag == "img":
            continue
        stack.append((node, True))
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    flush()
    return [p for p in paragraphs if p]


def _row_sentence(cells: list[str], row: Any) -> str:
    """A table row as text: 'Header: cell; Header: cell.' when the table has a header row, else cells joined."""
    table = row.parent
    while table is not None and table.tag != "table":
        table = table.parent
    header: list[str] = []
    if table is not None:
        first = table.css_first("tr")
        if first is not None and first.css_first("th") is not None:
            if first == row:
                return ""  # the header row: its names are given with every other row
            header = [" ".join(c.text().split()) for c in first.iter() if c.tag in ("td", "th")]
    if header and len(header) == len(cells):
        pairs = [f"{h}: {c}" for h, c in zip(header, cells, strict=True) if c]
        return "; ".join(pairs) + ("." if pairs else "")
    text = "; ".join(c for c in cells if c)
    return text + "." if text and not text.endswith((".", "!", "?")) else text


def html_to_text(html: str | bytes) -> tuple[str, Counter[str], int]:
    """(paragraphs joined by blank lines, what was dropped by kind, headings) of an HTML document."""
    from selectolax.lexbor import LexborHTMLParser  # heavy: only when a page is read

    tree = LexborHTMLParser(html)
    dropped: Counter[str] = Counter()
    body = tree.body
    if body is None:
        return "", dropped, 0
    _remove_chrome(body, dropped)
    candidates = tree.css("article") or tree.css("main") or tree.css("[role=main]")
    # The main content: the one article or main element; several articles (a listing) keep the body.
    root = candidates[0] if len(candidates) == 1 else body
    headings = sum(1 for node in root.traverse() if node.tag in _HEADINGS)
    return paragraphs_text(_blocks(root)), dropped, headings


def describe_dropped(dropped: Counter[str]) -> list[str]:
    """['2 navigation blocks', '1 cookie banner', …] in a fixed order."""
    return [plural(count, kind) for kind, count in sorted(dropped.items())]


def _decode(data: bytes) -> str:
    """Bytes of a page as text: a BOM or the meta charset, else UTF-8 (bad bytes replaced)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    match = re.search(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", data[:4096], re.IGNORECASE)
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def extract(path: Path) -> ExtractedText:
    """The main text of the web page at ``path``."""
    data = path.read_bytes()
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ExtractError("is not a web page (it holds binary data); skipped it.")
    text, dropped, headings = html_to_text(_decode(data))
    return ExtractedText(text=text, format="html", units=max(1, headings), unit="sections",
                         dropped=describe_dropped(dropped))
