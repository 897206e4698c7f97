"""DataReport: what validation found about a whole folder, with a verdict and ready-made sentences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcustoms.data.types import FileReport, Verdict
from llmcustoms.errors import DataError


def human_size(num_bytes: int) -> str:
    """'512 B', '3.4 KB', '12.0 MB', '1.0 GB' (powers of 1024, as file managers show them)."""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


_FORMAT_NAMES = {"txt": "text", "markdown": "Markdown", "pdf": "PDF", "docx": "Word", "html": "web page",
                 "epub": "EPUB", "jsonl": "chat examples"}


def describe_file(report: FileReport) -> str:
    """One line on what was read from a file: "guide.pdf — PDF, 12 pages, 3,400 words; dropped 12 page numbers"."""
    parts = [_FORMAT_NAMES.get(report.format, report.format)]
    if report.units and report.unit:
        unit = report.unit[:-1] if report.units == 1 and report.unit.endswith("s") else report.unit
        parts.append(f"{report.units:,} {unit}")
    parts.append(f"{report.words:,} words")
    line = f"{report.relpath} — " + ", ".join(parts)
    if report.notes:
        line += f" ({'; '.join(report.notes)})"
    if report.dropped:
        line += "; dropped " + ", ".join(report.dropped)
    return line


@dataclass
class DataReport:
    """The validation of one data folder.

    ``errors`` block training (``verdict == 'blocked'``); ``warnings`` and per-file problems do not.
    Every message is one sentence a person can act on, naming the file or folder concerned.
    """

    root: Path
    files: list[FileReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    total_chars: int = 0
    estimated_tokens: int = 0
    max_file_bytes: int = 10 * 1024 * 1024
    #: Files listed by the check that then disappeared or became unreadable (relative paths), in order.
    vanished: list[str] = field(default_factory=list)
    #: Counts the examples this folder makes (``validate_folder`` gives ``data.count.count_examples``);
    #: passed in rather than imported because counting builds examples, which read this report.
    counter: Callable[[DataReport], Any] | None = field(default=None, repr=False, compare=False)
    #: The count of examples, made on first use: building them costs a moment.
    _example_count: Any = field(default=None, repr=False, compare=False)
    #: The caller's resolved settings (``utils.config.Settings``; DEFAULT_PRESET sets the count's pairs per
    #: chunk); None: read when the count needs them.
    settings: Any = field(default=None, repr=False, compare=False)
    #: Text extracted from documents (PDF, Word, …) by the check, by relative path, kept for the build so a
    #: document is read once; a folder whose documents hold more than the budget has the rest read again.
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def keep_text(self, relpath: str, text: str, budget_chars: int) -> None:
        """Keep ``text`` extracted from ``relpath`` while all kept texts stay within ``budget_chars``."""
        if sum(len(t) for t in self._texts.values()) + len(text) <= budget_chars:
            self._texts[relpath] = text

    def kept_text(self, relpath: str) -> str | None:
        """The text the check extracted from ``relpath``, when it was kept."""
        return self._texts.get(relpath)

    @property
    def example_count(self) -> Any:
        """The ``ExampleCount`` of this folder (built, or estimated for a large one); None when blocked.

        Counted once, on first use, with the code that builds the examples. A folder that makes no
        example gets that sentence as an error, so ``validate`` blocks what ``prepare`` would refuse.
        """
        if self._example_count is None and not self.errors and self.files and self.counter is not None:
            try:
                self._example_count = self.counter(self)
            except DataError as error:
                self.errors.append(str(error))
        return self._example_count

    @property
    def known_example_count(self) -> Any:
        """``example_count`` when it was already made, else None: never builds (safe on a UI thread)."""
        return self._example_count

    @property
    def estimated_examples(self) -> int:
        """How many examples the folder makes (``example_count``'s number; 0 when blocked)."""
        count = self.example_count
        return count.examples if count is not None else 0

    @property
    def usable_files(self) -> int:
        """How many files will be read (status 'ok' or 'warning')."""
        return sum(1 for f in self.files if f.status != "skipped")

    @property
    def total_bytes(self) -> int:
        """Bytes in the usable files."""
        return sum(f.size_bytes for f in self.files if f.status != "skipped")

    @property
    def verdict(self) -> Verdict:
        """'blocked' when anything in ``errors``; 'warnings' when any warning or file problem; else 'ok'."""
        if self.errors:
            return "blocked"
        if self.warnings or any(f.problems for f in self.files):
            return "warnings"
        return "ok"

    @property
    def ok(self) -> bool:
        """True unless the folder cannot be trained on."""
        return self.verdict != "blocked"

    def vanished_sentence(self) -> str | None:
        """One sentence naming the files that disappeared while the folder was read; None when none did."""
        if not self.vanished:
            return None
        names = ", ".join(f"'{name}'" for name in self.vanished[:3]) + (" …" if len(self.vanished) > 3 else "")
        used = self.usable_files - len(set(self.vanished) & {f.relpath for f in self.files if f.status != "skipped"})
        return (f"{len(self.vanished)} file(s) disappeared or became unreadable while the folder '{self.root}' was "
                f"being read ({names}), so the examples come from the other {max(0, used)} file(s) only.")

    def raise_if_blocked(self) -> None:
        """Raise DataError with the first error sentence when the verdict is 'blocked'."""
        if self.errors:
            raise DataError(self.errors[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``llmcustoms validate --json``)."""
        count = self.example_count  # first: a folder that makes no example is blocked
        return {
            "root": str(self.root),
            "verdict": self.verdict,
            "ok": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "total_chars": self.total_chars,
            "total_bytes": self.total_bytes,
            "usable_files": self.usable_files,
            "estimated_examples": self.estimated_examples,
            "examples_exact": bool(count is not None and count.exact),
            "estimated_tokens": self.estimated_tokens,
            "max_file_bytes": self.max_file_bytes,
            "files": [f.to_dict() for f in self.files],
        }

    def summary_lines(self) -> list[str]:
        """Short human lines: totals, then each error and warning, then each file with problems."""
        count = self.example_count  # first: a folder that makes no example is blocked
        lines = [
            f"Folder: {self.root}",
            f"Files: {self.usable_files} usable of {len(self.files)} "
            f"({human_size(self.total_bytes)}, {self.total_chars:,} characters)",
        ]
        if count is not None:
            lines.append(f"Examples: {count.describe()}, as prepare and train build them offline; "
                         f"~{self.estimated_tokens:,} tokens of text")
        lines.append(f"Verdict: {self.verdict}")
        lines += [f"error: {e}" for e in self.errors]
        # A warning the error already quotes (a blocked folder's only file) is said once, as the error.
        lines += [f"warning: {w}" for w in self.warnings if not any(w in e for e in self.errors)]
        lines += [f"file: {describe_file(report)}" for report in self.files if report.status != "skipped"]
        for report in self.files:
            for problem in report.problems:
                if problem not in self.warnings and problem not in self.errors:
                    lines.append(f"{report.status}: {problem}")
        return lines
