"""Reading the usable files of a checked folder as text: streamed, decoded, huge files in pieces.

Documents (PDF, Word, …) give the text the check extracted (kept in the report), or are read again in
the sandboxed reader when it was not kept; chat ``.jsonl`` files are not documents (``data.chatfiles``).

``reader.validate_folder`` decides which files are usable and how they are encoded; this module reads
them (``iter_documents``), so building examples never needs the folder scanner.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterator

from llmcustoms.data.formats.sandbox import Sandbox
from llmcustoms.data.formats.types import ExtractError
from llmcustoms.data.report import DataReport
from llmcustoms.data.types import Document, FileReport

#: Bytes read from a file at a time.
BLOCK_BYTES = 1 << 20
#: Characters in one piece of a file above the size limit.
PIECE_CHARS = 1 << 20


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open ``path`` read-only without ever blocking; raise OSError(EINVAL) unless it is a regular file.

    ``O_NONBLOCK`` makes opening a FIFO return at once; ``fstat`` on the open descriptor closes the
    race between an earlier ``stat`` and the open.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _decode_pieces(fd: int, encoding: str) -> Iterator[str]:
    """Decoded text in blocks, newlines normalised to LF, never splitting a CRLF pair."""

    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    pending_cr = False
    while True:
        block = os.read(fd, BLOCK_BYTES)
        text = decoder.decode(block, final=not block)
        if pending_cr:
            text = "\r" + text
            pending_cr = False
        if block and text.endswith("\r"):
            text, pending_cr = text[:-1], True
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text:
            yield text
        if not block:
            return


def _cut_point(text: str, limit: int) -> int:
    """Where to end a piece of at most ``limit`` characters: after a blank line, a newline or a space."""
    for sep in ("\n\n", "\n", " "):
        at = text.rfind(sep, limit // 2, limit)
        if at >= 0:
            return at + len(sep)
    return limit


def iter_documents(report: DataReport, piece_chars: int = PIECE_CHARS) -> Iterator[Document]:
    """Stream the usable files' text, one Document at a time.

    Files above ``report.max_file_bytes`` are yielded in pieces of about ``piece_chars`` characters,
    cut at paragraph (else line, else word) boundaries; their Documents carry ``part`` 0, 1, 2, …
    Memory stays at about one piece however large the folder is. A file that disappeared or became
    unreadable since the check is added to ``report.vanished`` (and skipped) instead of ending the run:
    the caller says so (``DataReport.vanished_sentence``).
    """
    sandbox = None  # a document reader, started only when a document's text was not kept by the check
    try:
        for file_report in report.files:
            if file_report.status == "skipped" or file_report.format == "jsonl":  # chat examples: data.chatfiles
                continue
            try:
                if file_report.format == "txt":
                    yield from _file_documents(report, file_report, piece_chars)
                    continue
                text = report.kept_text(file_report.relpath)
                if text is None:
                    sandbox = sandbox or Sandbox()
                    text = sandbox.extract(report.root / file_report.relpath, file_report.format).text
                yield from _text_documents(report, file_report, text, piece_chars)
            except OSError:
                _vanished(report, file_report)
            except ExtractError:  # the file changed since the check (or cannot be read now)
                _vanished(report, file_report)
    finally:
        if sandbox is not None:
            sandbox.close()


def _vanished(report: DataReport, file_report: FileReport) -> None:
    file_report.vanished = True
    if file_report.relpath not in report.vanished:
        report.vanished.append(file_report.relpath)


def _text_documents(report: DataReport, file_report: FileReport, text: str, piece_chars: int) -> Iterator[Document]:
    """An extracted document's text as one Document, or pieces of about ``piece_chars`` when it is long."""
    path = report.root / file_report.relpath
    part = 0
    while text:
        cut = len(text) if len(text) <= piece_chars else _cut_point(text, piece_chars)
        yield Document(path=path, relpath=file_report.relpath, text=text[:cut], size_bytes=file_report.size_bytes,
                       encoding="utf-8", part=part)
        text = text[cut:]
        part += 1


def _file_documents(report: DataReport, file_report: FileReport, piece_chars: int) -> Iterator[Document]:
    """One file's Documents (pieces when it is huge); OSError when it cannot be opened or read."""
    path = report.root / file_report.relpath
    encoding = file_report.encoding or "utf-8"
    fd = open_regular(path)
    try:
        if file_report.size_bytes <= report.max_file_bytes:
            text = "".join(_decode_pieces(fd, encoding))
            yield Document(path=path, relpath=file_report.relpath, text=text,
                           size_bytes=file_report.size_bytes, encoding=encoding)
            return
        buffer = ""
        part = 0
        for text in _decode_pieces(fd, encoding):
            buffer += text
            while len(buffer) >= piece_chars:
                cut = _cut_point(buffer, piece_chars)
                yield Document(path=path, relpath=file_report.relpath, text=buffer[:cut],
                               size_bytes=file_report.size_bytes, encoding=encoding, part=part)
                buffer = buffer[cut:]
                part += 1
        if buffer.strip():
            yield Document(path=path, relpath=file_report.relpath, text=buffer,
                           size_bytes=file_report.size_bytes, encoding=encoding, part=part)
    finally:
        os.close(fd)
