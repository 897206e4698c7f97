"""PDF text layers, read with pypdfium2 (Google's PDFium; Apache-2.0 / BSD-3-Clause).

Pages are read one at a time (a 2,000-page file never sits in memory as objects), then joined by
``layout.join_pages``: running headers, footers and page numbers dropped, wrapped lines joined,
hyphenated words rejoined. A page without a text layer (a scanned image) is named; a file without
any is refused in one sentence. OCR is not attempted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmcustoms.data.formats.layout import join_pages
from llmcustoms.data.formats.types import ExtractedText, ExtractError, plural


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def extract(path: Path, progress: Callable[[int, int], None] | None = None) -> ExtractedText:
    """The text of the PDF at ``path``; ExtractError when it is encrypted, damaged or has no text layer."""
    import pypdfium2 as pdfium  # heavy: only when a PDF is read

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        reason = str(exc).lower()
        if "password" in reason or "security" in reason:
            raise ExtractError("is an encrypted PDF (it needs a password); skipped it — save a copy without "
                               "the password to use it.") from None
        raise ExtractError("is not a readable PDF (the file is damaged or cut short); skipped it.") from None
    pages: list[list[str]] = []
    empty: list[int] = []
    try:
        total = len(document)
        for index in range(total):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_range()
                finally:
                    textpage.close()
            finally:
                page.close()
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if not text.strip():
                empty.append(index + 1)
            pages.append(lines)
            if progress is not None:
                progress(index + 1, total)
    except pdfium.PdfiumError:
        raise ExtractError(f"is a damaged PDF (page {len(pages) + 1} of it cannot be read); skipped it.") from None
    finally:
        document.close()
    if total == 0:
        raise ExtractError("is a PDF with no pages; skipped it.")
    if len(empty) == total:
        raise ExtractError(f"is a scanned PDF: none of its {plural(total, 'page')} has a text layer (OCR is not "
                           f"attempted); skipped it — export it with its text, or run OCR on it first.")
    joined = join_pages(pages)
    result = ExtractedText(text=joined.text, format="pdf", units=total, unit="pages")
    if joined.headers:
        result.dropped.append(f"{plural(joined.headers, 'repeated header/footer line')}")
    if joined.page_numbers:
        result.dropped.append(f"{plural(joined.page_numbers, 'page number')}")
    if joined.hyphens:
        result.dropped.append(f"{plural(joined.hyphens, 'line-end hyphen')} (words rejoined)")
    if empty:
        which = "page" if len(empty) == 1 else "pages"
        verb = "has" if len(empty) == 1 else "have"
        result.notes.append(f"{which} {_page_list(empty)} {verb} no text layer (scanned images; OCR is not "
                            f"attempted)")
    return result
