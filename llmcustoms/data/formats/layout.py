"""From a paged document's lines to paragraphs that read like the document, not like its pages.

Used for PDF: lines repeated at the top or bottom of most pages (running headers and footers) and
page numbers are dropped; lines wrapped by the page layout are joined into sentences; a word
hyphenated across a line end is rejoined; paragraphs stay paragraphs. Pure text in, text out, so it
is tested without any PDF library.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from llmcustoms.data.formats.types import paragraphs_text

#: Lines looked at, at the top and at the bottom of each page, for running headers and footers.
EDGE_LINES = 2
#: A line is a running header/footer when it is at a page edge on at least this share of the pages.
REPEAT_SHARE = 0.5
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"^(?:(?:page|p\.|seite|página|pagina)\s*)?(?:\d{1,5}|[ivxlcdm]{1,7})(?:\s*(?:of|/|de|von)\s*\d{1,5})?$"
    r"|^[-–—\s]*\d{1,5}[-–—\s]*$",
    re.IGNORECASE,
)
#: pdfium marks a hyphen that ends a line inside a word with U+FFFE or U+0002; a soft hyphen is U+00AD.
_SOFT_HYPHENS = ("\ufffe", "\x02", "\xad")
_ENDS_SENTENCE = re.compile(r"[.!?:;…\"'”’)\]]$")
_LIST_ITEM = re.compile(r"^(?:[-•*·▪◦‣]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s)")


@dataclass
class LayoutResult:
    """The joined text and how many lines of each kind were dropped."""

    text: str
    headers: int = 0  # running header/footer lines dropped
    page_numbers: int = 0  # page-number lines dropped
    hyphens: int = 0  # words rejoined across a line end


#: Running headers and footers are short; a longer line repeated at a page edge is the document's own text.
MAX_HEADER_CHARS = 100


def _edge_positions(lines: list[str]) -> list[int]:
    nonblank = [i for i, line in enumerate(lines) if line.strip() and len(line.strip()) <= MAX_HEADER_CHARS]
    return sorted(set(nonblank[:EDGE_LINES] + nonblank[-EDGE_LINES:]))


def _edge_key(line: str, page_number: int) -> str:
    """The key a page-edge line is compared by: the line itself, or with its numbers blanked when one of
    them is the page's number ('Field Guide · 12' on page 12), so a 'Chapter 2' heading never matches
    'Chapter 3' but a running header with the page number in it matches on every page."""
    text = " ".join(line.split()).casefold()
    if str(page_number) in _DIGITS.findall(text):
        return _DIGITS.sub("#", text)
    return text


def _repeated_edge_keys(pages: list[list[str]]) -> set[str]:
    """Keys of lines that sit at a page edge on at least ``REPEAT_SHARE`` of the pages (two pages at least)."""
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for number, lines in enumerate(pages, 1):
        seen.update({_edge_key(lines[i], number) for i in _edge_positions(lines)})
    wanted = max(2, int(len(pages) * REPEAT_SHARE + 0.999))
    return {key for key, count in seen.items() if count >= wanted and key.strip("# ")}


def _fix_hyphens(text: str) -> tuple[str, int]:
    count = 0
    for mark in _SOFT_HYPHENS:
        count += text.count(mark)
        text = text.replace(mark, "")
    return text, count


def join_pages(pages: list[list[str]]) -> LayoutResult:
    """Paragraphs from the pages' lines (each page a list of lines, in reading order)."""
    result = LayoutResult(text="")
    repeated = _repeated_edge_keys(pages)
    kept: list[str] = []  # the document's lines, blank lines marking paragraph ends
    for number, lines in enumerate(pages, 1):
        edges = set(_edge_positions(lines))
        for i, raw in enumerate(lines):
            line = " ".join(raw.split())
            if i in edges and line:
                if _PAGE_NUMBER.match(line):
                    result.page_numbers += 1
                    continue
                if _edge_key(line, number) in repeated:
                    result.headers += 1
                    continue
            kept.append(line)
        kept.append("")  # a page break ends a paragraph only when the text says so (see below)
        kept.append("\f")
    result.text, result.hyphens = _paragraphs(kept)
    return result


def _paragraphs(lines: list[str]) -> tuple[str, int]:
    """Join wrapped lines: a paragraph ends at a blank line, after a short line that ends a sentence,
    at a heading-like short line, or before a list item; a page break inside a sentence is joined."""
    widths = sorted(len(line) for line in lines if len(line) > 1)
    full = widths[int(len(widths) * 0.9)] if widths else 0  # a typical full line's length
    paragraphs: list[str] = []
    current = ""
    hyphens = 0
    # The next line with text after each line (computed once: looking ahead per line would be quadratic).
    following_text = [""] * len(lines)
    upcoming = ""
    for index in range(len(lines) - 1, -1, -1):
        following_text[index] = upcoming
        if lines[index] and lines[index] != "\f":
            upcoming = lines[index]

    def flush() -> None:
        nonlocal current
        if current.strip():
            paragraphs.append(current.strip())
        current = ""

    for index, line in enumerate(lines):
        if line == "\f":
            continue
        if not line:
            # A blank line (or a page end) ends the paragraph unless the sentence runs on to the next page.
            following = following_text[index]
            at_page_end = index + 1 < len(lines) and lines[index + 1] == "\f"
            if at_page_end and current and not _ENDS_SENTENCE.search(current) and following[:1].islower():
                continue
            flush()
            continue
        if "\ufffe" in line or "\x02" in line or "\xad" in line:
            line, marks = _fix_hyphens(line)
            hyphens += marks
        if _LIST_ITEM.match(line):
            flush()
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and line[:1].islower():
            current = current[:-1] + line
            hyphens += 1
        elif current:
            current += " " + line
        else:
            current = line
        short = full and len(line) < 0.8 * full
        if short and (_ENDS_SENTENCE.search(line) or _heading_like(following_text[index])):
            flush()
    flush()
    return paragraphs_text(paragraphs), hyphens


def _heading_like(following: str) -> bool:
    """A short line with no sentence end, followed by a line that starts a sentence: a heading or a list line."""
    return bool(following[:1].isupper() or following[:1].isdigit() or _LIST_ITEM.match(following))
