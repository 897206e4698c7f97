"""Reading and validating a folder of documents, safely and in constant memory.

Plain ``.txt`` files are streamed here; Markdown, PDF, Word, web pages and EPUB are read by
``data.formats`` in a worker process with a per-file time and memory limit (``formats.sandbox``), and
chat examples in ``.jsonl`` by ``data.chatfiles``; each file's report says its format, pages or
sections, words and what was dropped.

``validate_folder`` walks the folder once, streaming every ``.txt`` file in 1 MiB blocks, and
reports per file (size, encoding, characters, problems) and overall (verdict, errors, warnings).
``iter_documents`` then streams the usable files' text, one document (or one piece of a huge
file) at a time. Nothing here writes anywhere: the user's files are only ever opened read-only.

Safety rules: no link is followed out of the folder, links that loop are detected, special files
(FIFOs, sockets, devices) are skipped after an ``lstat``/``stat`` check, and every open uses
``O_NONBLOCK`` and is re-checked with ``fstat`` so a FIFO swapped in cannot hang us.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcustoms.data.chatfiles import MAX_NAMED_BAD_LINES, read_chat_file
from llmcustoms.data.count import count_examples
from llmcustoms.data.documents import open_regular
from llmcustoms.data.formats import FORMAT_NAMES, ExtractError, format_of
from llmcustoms.data.formats.sandbox import DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_S, Sandbox
from llmcustoms.data.report import DataReport, human_size
from llmcustoms.data.types import FileReport

#: Files larger than this are still read, but streamed in pieces, with a note.
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
#: Less text than this (in all usable files together) is too little to train on.
MIN_TRAIN_CHARS = 200
#: Bytes read per os.read call.
BLOCK_BYTES = 1 << 20
#: Characters per Document piece when a huge file is streamed.
PIECE_CHARS = 1 << 20
#: Rough characters per token of English text for BPE tokenizers.
CHARS_PER_TOKEN = 4
#: The endings read, as sentences name them.
_READABLE = ".txt, .md, .pdf, .docx, .html or .epub (or chat examples as .jsonl)"
#: Extracted text kept in memory between the check and the build (characters, all files together);
#: beyond it, a document is read again when the examples are built.
TEXT_CACHE_CHARS = 64 * 1024 * 1024

_QA_MARKER = re.compile(rb"(?im)^[ \t]*(?:question|q)[ \t]*\d*[ \t]*:")
#: A letter or digit in any script (Chinese, Japanese and Korean characters are letters; emoji are not).
_WORD_CHAR = re.compile(r"[^\W_]")
#: Chinese, Japanese and Korean characters: about one token each, where English takes ~4 characters a token.
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
#: Hidden folders that tools make; skipped without a note.
_TOOL_FOLDERS = frozenset({".git", ".hg", ".svn", ".venv", ".idea", ".vscode", ".ipynb_checkpoints", ".cache"})
_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


# --------------------------------------------------------------------------- walking the folder


@dataclass
class _Entry:
    """A .txt candidate found by the walk: a readable regular file, or a problem to report."""

    relpath: str
    path: str
    size: int = 0
    problem: str | None = None


def _describe_special(mode: int) -> str:
    return _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")


def _inside(path: str, root_real: str) -> bool:
    return path == root_real or path.startswith(root_real.rstrip(os.sep) + os.sep)


class _Walker:
    """Walks ``root`` depth-first in sorted order, following links only while they stay inside."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.entries: list[_Entry] = []
        self.other_files: list[str] = []
        self.hidden: list[str] = []
        self.notes: list[str] = []  # folder-level warnings (link loops, links out, unreadable folders)
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: dict[tuple[int, int], str] = {}
        # Links to files are settled after the walk, so the real file wins over a link to it.
        self.linked_files: list[tuple[_Entry, tuple[int, int]]] = []

    def walk(self) -> None:
        st = os.stat(self.root)
        self.seen_dirs.add((st.st_dev, st.st_ino))
        stack: list[tuple[str, str]] = [(str(self.root), "")]
        while stack:
            path, rel = stack.pop()
            try:
                with os.scandir(path) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.notes.append(f"The folder '{rel or '.'}' cannot be read ({exc.strerror}); skipped it.")
                continue
            subdirs: list[tuple[str, str]] = []
            for child in children:
                child_rel = f"{rel}/{child.name}" if rel else child.name
                result = self._visit(child.path, child_rel, child.name)
                if result is not None:
                    subdirs.append(result)
            stack.extend(reversed(subdirs))  # keep sorted order when popping
        for entry, key in self.linked_files:
            if key in self.seen_files:
                entry.problem = f"'{entry.relpath}' is the same file as '{self.seen_files[key]}'; read it only once."
                entry.size = 0
            else:
                self.seen_files[key] = entry.relpath
        self.entries.sort(key=lambda e: e.relpath)

    def _visit(self, path: str, rel: str, name: str) -> tuple[str, str] | None:
        """Handle one directory entry; return (path, rel) when it is a folder to descend into."""
        is_txt = format_of(name) is not None  # a file this reader takes (.txt, .md, .pdf, … .jsonl)
        if name.startswith("."):
            # Hidden entries are never read; only those a person might expect to be are mentioned.
            if is_txt or (name not in _TOOL_FOLDERS and os.path.isdir(path)):
                self.hidden.append(rel)
            return None
        try:
            lst = os.lstat(path)
        except OSError as exc:
            if is_txt:
                self.entries.append(_Entry(rel, path, problem=f"'{rel}' cannot be read ({exc.strerror}); skipped it."))
            return None
        is_link = stat.S_ISLNK(lst.st_mode)
        st = lst
        if is_link:
            target = os.readlink(path)
            try:
                st = os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    msg = f"'{rel}' is a symbolic link that loops back on itself; skipped it."
                else:
                    msg = f"'{rel}' is a broken link (it points to '{target}', which does not exist); skipped it."
                if is_txt:
                    self.entries.append(_Entry(rel, path, problem=msg))
                return None
            real = os.path.realpath(path)
            if not _inside(real, self.root_real):
                msg = (f"'{rel}' is a link to '{target}', outside the data folder; skipped it "
                       f"(links out of the folder are not followed).")
                if is_txt or stat.S_ISDIR(st.st_mode):
                    self.notes.append(msg)
                return None
        key = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            # A folder (even one named x.txt) is walked, never read as a file.
            if key in self.seen_dirs:
                real = os.path.realpath(path)
                if is_link and _inside(os.path.realpath(os.path.dirname(path)), real):
                    self.notes.append(f"'{rel}' is a link back to a folder that contains it (a loop); skipped it.")
                else:
                    self.notes.append(f"'{rel}' is a link to a folder that is already read; skipped it.")
                return None
            self.seen_dirs.add(key)
            return path, rel
        if not is_txt:
            self.other_files.append(rel)
            return None
        if not stat.S_ISREG(st.st_mode):
            self.entries.append(_Entry(rel, path, problem=f"'{rel}' is {_describe_special(st.st_mode)}, "
                                                         f"not a regular file; skipped it."))
            return None
        entry = _Entry(rel, path, size=st.st_size)
        self.entries.append(entry)
        if is_link:
            self.linked_files.append((entry, key))
        elif key in self.seen_files:  # a hard link to a file already read
            entry.problem = f"'{rel}' is the same file as '{self.seen_files[key]}'; read it only once."
        else:
            self.seen_files[key] = rel
        return None


def _bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark announces (UTF-32 is tested before UTF-16: its BOM starts alike)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith(b"\xff\xfe\x00\x00"):
        return "UTF-32 (little-endian)"
    if head.startswith(b"\x00\x00\xfe\xff"):
        return "UTF-32 (big-endian)"
    if head.startswith(b"\xff\xfe"):
        return "UTF-16 (little-endian)"
    if head.startswith(b"\xfe\xff"):
        return "UTF-16 (big-endian)"
    return None


def _looks_utf16_without_bom(head: bytes) -> str | None:
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "UTF-16 (little-endian)"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "UTF-16 (big-endian)"
    return None


def _looks_binary(sample: bytes) -> bool:
    """True when more than 10 % of the bytes are control characters other than tab/newline/CR/FF."""
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13)) + sample.count(127)
    return controls > 0.1 * len(sample)


def _scan_file(entry: _Entry, max_file_bytes: int) -> tuple[FileReport, int]:
    """Stream one file once: encoding, characters, problems. Returns (report, Q&A marker count)."""
    rel = entry.relpath
    report = FileReport(relpath=rel, size_bytes=entry.size)
    try:
        fd = open_regular(entry.path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # listed a moment ago: it was deleted or moved while we read
            report.vanished = True
            return _skip(report, f"'{rel}' disappeared while the folder was being read; skipped it."), 0
        reason = "it is not a regular file" if exc.errno == errno.EINVAL else exc.strerror
        return _skip(report, f"'{rel}' cannot be read ({reason}); skipped it — check its permissions."), 0
    qa_markers = 0
    try:
        base = 0          # absolute byte offset of data[0]
        carry = b""       # an incomplete UTF-8 sequence left from the previous block
        prev_cr = False
        has_text = False
        has_words = False  # emoji, symbols and punctuation alone are not text to learn from
        first = True
        encoding = "utf-8"
        head = b""
        while True:
            block = os.read(fd, BLOCK_BYTES)
            if first:
                first = False
                head = block[:65536]
                if not block:
                    return _skip(report, f"'{rel}' is empty (0 bytes); skipped it."), 0
                bom = _bom_encoding(block)
                if bom and bom != "utf-8-sig":
                    report.encoding = bom
                    return _skip(report, f"'{rel}' is encoded as {bom} (it starts with a byte-order mark), "
                                         f"not UTF-8; skipped it — save it as UTF-8 to use it."), 0
                if bom == "utf-8-sig":
                    encoding = "utf-8-sig"
                    block = block[3:]
                    base = 3
            nul = block.find(b"\x00")
            if nul >= 0:
                offset = base + len(carry) + nul
                guess = _looks_utf16_without_bom(head) if offset < 4096 else None
                if guess:
                    report.encoding = guess
                    return _skip(report, f"'{rel}' looks like {guess} text without a byte-order mark, not UTF-8 "
                                         f"(a NUL byte at offset {offset}); skipped it — save it as UTF-8 to use "
                                         f"it."), 0
                if _looks_binary(head):
                    report.encoding = "binary"
                    return _skip(report, f"'{rel}' contains binary data, not text (a NUL byte at offset "
                                         f"{offset}); skipped it."), 0
                return _skip(report, f"'{rel}' contains a NUL byte at offset {offset}, so it is not plain "
                                     f"text; skipped it — remove that byte or save the file again as UTF-8."), 0
            final = not block
            data = carry + block
            try:
                text = data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if not final and exc.reason == "unexpected end of data" and exc.end == len(data):
                    text = data[: exc.start].decode("utf-8")
                    carry = data[exc.start:]
                else:
                    offset = base + exc.start
                    byte = data[exc.start]
                    if _looks_binary(head):
                        report.encoding = "binary"
                        return _skip(report, f"'{rel}' contains binary data, not text (byte 0x{byte:02X} at "
                                             f"offset {offset}); skipped it."), 0
                    report.encoding = "latin-1"
                    return _skip(report, f"'{rel}' is not UTF-8 (byte 0x{byte:02X} at offset {offset}; it looks "
                                         f"like Latin-1 / Windows-1252); skipped it — save it as UTF-8 to use "
                                         f"it."), 0
            qa_markers += len(_QA_MARKER.findall(block))
            # Characters after CRLF → LF normalisation (a CR at the end of one block may pair with
            # an LF at the start of the next).
            chars = len(text) - text.count("\r\n")
            if prev_cr and text.startswith("\n"):
                chars -= 1
            prev_cr = text.endswith("\r")
            report.chars += chars
            report.words += len(text.split())  # a word cut by a block boundary counts twice: rare
            if not has_text and text.strip():
                has_text = True
            if not has_words and _WORD_CHAR.search(text):
                has_words = True
            report.cjk_chars += len(_CJK_CHAR.findall(text))
            base += len(data) - len(carry)
            if final:
                break
    finally:
        os.close(fd)
    report.encoding = encoding
    if not has_text:
        return _skip(report, f"'{rel}' holds only whitespace ({human_size(report.size_bytes)}); skipped it."), 0
    if not has_words:
        return _skip(report, f"'{rel}' holds no words (only emoji, symbols or punctuation); skipped it — "
                             f"write some sentences in it to use it."), 0
    if report.size_bytes > max_file_bytes:
        report.status = "warning"
        report.problems.append(
            f"'{rel}' is {human_size(report.size_bytes)}, over the {human_size(max_file_bytes)} per-file size; "
            f"it will be read in pieces (streaming) rather than all at once."
        )
    return report, qa_markers


def _skip(report: FileReport, problem: str) -> FileReport:
    report.status = "skipped"
    report.problems.append(problem)
    return report


def _scan_entry(entry: _Entry, max_file_bytes: int, sandbox: Sandbox, report: DataReport,
                on_progress: Callable[[str, int, int], None] | None = None) -> FileReport:
    """One readable file's report, by its format: .txt streamed here, chat .jsonl, or a document."""
    fmt = format_of(entry.relpath) or "txt"
    if fmt == "txt":
        file_report, _ = _scan_file(entry, max_file_bytes)
        return file_report
    if not os.path.exists(entry.path):  # listed a moment ago: deleted or moved while we read
        file_report = FileReport(relpath=entry.relpath, size_bytes=entry.size, format=fmt, vanished=True)
        return _skip(file_report, f"'{entry.relpath}' disappeared while the folder was being read; skipped it.")
    if fmt == "jsonl":
        return _scan_chat(entry)
    return _scan_document(entry, fmt, sandbox, report, on_progress)


def _scan_chat(entry: _Entry) -> FileReport:
    """A .jsonl file of chat examples: how many, in which layouts, and its bad lines named."""
    rel = entry.relpath
    file_report = FileReport(relpath=rel, size_bytes=entry.size, format="jsonl", unit="examples")
    try:
        chat = read_chat_file(Path(entry.path), rel)
    except OSError as exc:
        return _skip(file_report, f"'{rel}' cannot be read ({exc.strerror}); skipped it.")
    file_report.units = len(chat.examples)
    file_report.chars, file_report.words = chat.chars, chat.words
    if chat.layouts:
        file_report.dropped = []
        layouts = ", ".join(f"{n} {name}" for name, n in sorted(chat.layouts.items()))
        file_report.notes.append(f"layouts: {layouts}")
    if chat.bad_lines:
        file_report.status = "warning"
        file_report.dropped.append(f"{len(chat.bad_lines)} bad line(s)")
        file_report.problems.extend(chat.bad_lines[:MAX_NAMED_BAD_LINES])
        if len(chat.bad_lines) > MAX_NAMED_BAD_LINES:
            file_report.problems.append(f"'{rel}' has {len(chat.bad_lines) - MAX_NAMED_BAD_LINES} more bad "
                                        f"line(s), left out too.")
    if not chat.examples:
        what = "no valid chat example" if chat.bad_lines else "no chat examples (it is empty)"
        return _skip(file_report, f"'{rel}' holds {what}; skipped it — each line must be one example in the "
                                  f"OpenAI messages, ShareGPT conversations or Alpaca instruction/output layout.")
    return file_report


def _scan_document(entry: _Entry, fmt: str, sandbox: Sandbox, report: DataReport,
                   on_progress: Callable[[str, int, int], None] | None = None) -> FileReport:
    """A document read by ``data.formats`` in the sandbox: its text kept (within a budget) for the build."""
    rel = entry.relpath
    file_report = FileReport(relpath=rel, size_bytes=entry.size, format=fmt, encoding="utf-8")
    if on_progress is not None:
        on_progress(rel, 0, 0)  # a new file starts (its clock starts now)
    try:
        extracted = sandbox.extract(Path(entry.path), fmt,
                                    None if on_progress is None else lambda done, total: on_progress(rel, done, total))
    except ExtractError as exc:
        return _skip(file_report, f"'{rel}' {exc}")
    file_report.format = extracted.format
    file_report.units, file_report.unit = extracted.units, extracted.unit
    file_report.dropped = list(extracted.dropped)
    file_report.words = extracted.words
    file_report.chars = len(extracted.text)
    file_report.cjk_chars = len(_CJK_CHAR.findall(extracted.text))
    for note in extracted.notes:
        file_report.status = "warning"
        file_report.problems.append(f"'{rel}' {note}." if note.startswith("is ") else f"'{rel}': {note}.")
    if not _WORD_CHAR.search(extracted.text):
        name = FORMAT_NAMES.get(extracted.format, extracted.format)
        return _skip(file_report, f"'{rel}' holds no text (read as {name}); skipped it.")
    report.keep_text(rel, extracted.text, TEXT_CACHE_CHARS)
    return file_report


# --------------------------------------------------------------------------- the folder


def validate_folder(path: str | os.PathLike[str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                    settings: Any = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                    memory_bytes: int = DEFAULT_MEMORY_BYTES,
                    on_progress: Callable[[str, int, int], None] | None = None) -> DataReport:
    """Check every file it can read under ``path`` and return a DataReport; never raises for content problems.

    ``timeout_s``: the time one document (PDF, Word, …) may take to read before it is skipped;
    ``memory_bytes``: the address space its reader may use (a file that needs more is skipped).
    ``on_progress(relpath, done, total)``: ``(relpath, 0, 0)`` when a document starts, then the pages of a
    long PDF read so far, about once a second.

    Folder-level problems (missing, not a folder, empty, no .txt, nothing usable, too little text)
    become ``errors`` and make the verdict 'blocked'. Problems with single files are listed on the
    file's report and as warnings; those files are skipped (or, when huge, streamed).
    """
    root = Path(os.path.expanduser(os.fspath(path)))
    report = DataReport(root=root, max_file_bytes=max_file_bytes, counter=count_examples, settings=settings)
    shown = os.fspath(path)
    if not os.path.lexists(root):
        report.errors.append(f"The folder '{shown}' does not exist; check the path and try again.")
        return report
    if not root.is_dir():
        if root.is_file():
            report.errors.append(f"'{shown}' is a file, not a folder; give the folder that holds your documents.")
        elif root.is_symlink() and not root.exists():
            report.errors.append(f"'{shown}' is a broken link; give the folder that holds your documents.")
        else:
            report.errors.append(f"'{shown}' is not a folder; give the folder that holds your documents.")
        return report
    walker = _Walker(root)
    try:
        walker.walk()
    except OSError as exc:
        report.errors.append(f"The folder '{shown}' cannot be read ({exc.strerror}); check its permissions.")
        return report
    report.warnings.extend(walker.notes)
    if walker.hidden:
        names = ", ".join(walker.hidden[:3]) + (" …" if len(walker.hidden) > 3 else "")
        report.warnings.append(f"Skipped {len(walker.hidden)} hidden file(s) or folder(s) in '{shown}' ({names}); "
                               f"rename them without the leading dot to include them.")

    with Sandbox(timeout_s=timeout_s, memory_bytes=memory_bytes) as sandbox:  # started only when a document needs it
        for entry in walker.entries:
            if entry.problem:
                file_report = _skip(FileReport(relpath=entry.relpath, size_bytes=0,
                                               format=format_of(entry.relpath) or "txt"), entry.problem)
            else:
                file_report = _scan_entry(entry, max_file_bytes, sandbox, report, on_progress)
                if file_report.vanished:
                    report.vanished.append(entry.relpath)
            report.files.append(file_report)
            report.warnings.extend(file_report.problems)
            if file_report.status != "skipped":
                report.total_chars += file_report.chars

    _folder_errors(report, walker, shown)
    # The example count is made on first use (DataReport.example_count), by building them: one way.
    cjk = sum(f.cjk_chars for f in report.files if f.status != "skipped")
    report.estimated_tokens = (report.total_chars - cjk) // CHARS_PER_TOKEN + cjk
    return report


def _folder_errors(report: DataReport, walker: _Walker, shown: str) -> None:
    """Turn an unusable folder into one error sentence (the first one wins in raise_if_blocked)."""
    if not report.files:
        if not walker.other_files and not walker.seen_dirs - {_root_key(report.root)} and not walker.hidden \
                and not walker.notes:
            report.errors.append(f"The folder '{shown}' is empty; put some {_READABLE} files in it.")
        elif walker.other_files:
            examples = ", ".join(f"'{n}'" for n in walker.other_files[:3])
            report.errors.append(
                f"The folder '{shown}' has no .txt files nor other files it can read (found "
                f"{len(walker.other_files)} other file(s), such as {examples}); save your text in it as {_READABLE} "
                f"files."
            )
        else:
            report.errors.append(f"The folder '{shown}' has no .txt files nor other files it can read; save your "
                                 f"text in it as {_READABLE} files.")
        return
    usable = [f for f in report.files if f.status != "skipped"]
    if not usable:
        first = report.files[0].problems[0].rstrip(".")
        more = len(report.files) - 1
        kind = ".txt " if all(f.format == "txt" for f in report.files) else ""
        tail = f", and {more} more {kind}file(s) cannot be used either" if more else ""
        report.errors.append(f"No {kind}file in '{shown}' can be used: {first}{tail}.")
        return
    if report.total_chars < MIN_TRAIN_CHARS:
        report.errors.append(
            f"The folder '{shown}' has only {report.total_chars} characters of text; at least {MIN_TRAIN_CHARS} "
            f"are needed to train on, so add more text."
        )


def _root_key(root: Path) -> tuple[int, int]:
    st = os.stat(root)
    return st.st_dev, st.st_ino
