"""Reading documents of every format the data folder takes, as plain text: one module per format.

``extract(path)`` reads one file with the reader its real format needs (``sniff`` checks the bytes, so
a web page saved as ``.pdf`` is read as a web page, with a note), and returns an ``ExtractedText``.
``sandbox.Sandbox`` runs it in a worker process with a time and memory limit, so one file cannot hang
or exhaust the folder check. Plain ``.txt`` files keep their own streaming reader (``data.documents``);
chat examples in ``.jsonl`` are read by ``data.chatfiles``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmcustoms.data.formats import epub, markdown_text, pdf, web, word
from llmcustoms.data.formats.types import ExtractedText, ExtractError, count_words

__all__ = ["DOCUMENT_SUFFIXES", "FORMAT_NAMES", "ExtractError", "ExtractedText", "count_words", "extract",
           "format_of", "sniff"]

#: File endings read as documents, and the format each names.
DOCUMENT_SUFFIXES = {
    ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html",
    ".xhtml": "html", ".epub": "epub",
}
#: How each format is named in sentences.
FORMAT_NAMES = {"txt": "text", "markdown": "Markdown", "pdf": "PDF", "docx": "Word (.docx)", "html": "web page",
                "epub": "EPUB", "jsonl": "chat examples (JSONL)"}


def format_of(name: str) -> str | None:
    """The format a file name's ending announces ('pdf', 'txt', 'jsonl', …), or None when not read."""
    suffix = Path(name).suffix.lower()
    if suffix == ".txt":
        return "txt"
    if suffix == ".jsonl":
        return "jsonl"
    return DOCUMENT_SUFFIXES.get(suffix)


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file show ('pdf', 'zip', 'html'), or None when they show none of these."""
    if head[:1024].lstrip().startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    start = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
            start.startswith(b"<?xml") and b"<html" in start):
        return "html"
    return None


def _real_format(path: Path, declared: str) -> tuple[str, str | None]:
    """(the format to read ``path`` as, a note when that differs from its ending)."""
    with open(path, "rb") as handle:
        head = handle.read(2048)
    seen = sniff(head)
    if declared in ("pdf", "docx", "epub"):
        expected = "pdf" if declared == "pdf" else "zip"
        if seen == expected:
            return declared, None
        if seen == "html":
            return "html", (f"is a web page saved with the .{path.suffix.lower().lstrip('.')} ending; read it as a "
                            f"web page")
        if seen == "pdf":
            return "pdf", f"is a PDF saved with the {path.suffix.lower()} ending; read it as a PDF"
        if not head:
            raise ExtractError(f"is empty (0 bytes), not a {FORMAT_NAMES[declared]} file; skipped it.")
        raise ExtractError(f"is not really a {FORMAT_NAMES[declared]} file (its first bytes are not those of "
                           f"one, whatever its ending says); skipped it.")
    if seen in ("pdf", "zip"):  # a binary document with a text format's ending
        if seen == "pdf":
            return "pdf", f"is a PDF saved with the {path.suffix.lower()} ending; read it as a PDF"
        raise ExtractError(f"is a ZIP archive (perhaps a Word or EPUB file) saved with the {path.suffix.lower()} "
                           f"ending, not {FORMAT_NAMES[declared]}; skipped it — give it its real ending.")
    return declared, None


def extract(path: str | Path, declared: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> ExtractedText:
    """The plain text of the document at ``path``, read as its real format.

    ``progress(done, total)``: called after each page of a PDF (other formats are read in one go).
    Raises ExtractError (a sentence to put after the file's name) when it cannot be read at all.
    """
    path = Path(path)
    declared = declared or format_of(path.name)
    if declared is None or declared in ("txt", "jsonl"):
        raise ExtractError(f"is not a document this reader takes ({path.suffix or 'no ending'}); skipped it.")
    fmt, note = _real_format(path, declared)
    # The readers import their libraries (pypdfium2, python-docx, …) only when they read a file.
    if fmt == "pdf":
        result = pdf.extract(path, progress)
    else:
        reader = {"docx": word, "epub": epub, "html": web}.get(fmt, markdown_text)
        result = reader.extract(path)
    if note:
        result.notes.insert(0, note)
    return result
