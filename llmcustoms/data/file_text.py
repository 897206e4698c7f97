"""The text the model will learn from one file of a checked folder, for a preview (the TUI data screen).

A document's extracted text is the one the check kept (``DataReport.kept_text``), else it is read again
the way the examples are built (``iter_documents``); a chat ``.jsonl`` file shows its examples, turn by turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmcustoms.data.chatfiles import read_chat_file
from llmcustoms.data.documents import iter_documents
from llmcustoms.data.report import DataReport

#: The most characters shown of one file (a long book is cut, and says so).
PREVIEW_CHARS = 200_000


@dataclass
class FileText:
    """One file's text as the model will learn it, and whether it was cut for the preview."""

    relpath: str
    text: str
    cut: bool = False
    total_chars: int = 0  # the file's text in full (characters), when it was cut


def file_text(report: DataReport, relpath: str, limit_chars: int = PREVIEW_CHARS) -> FileText:
    """The extracted text of ``relpath`` in ``report``'s folder, up to ``limit_chars`` characters.

    Raises KeyError when the check did not list that file, ValueError when it was skipped (it teaches nothing).
    """
    file_report = next((f for f in report.files if f.relpath == relpath), None)
    if file_report is None:
        raise KeyError(relpath)
    if file_report.status == "skipped":
        raise ValueError(f"'{relpath}' was skipped, so nothing is learnt from it.")
    if file_report.format == "jsonl":
        chat = read_chat_file(report.root / relpath, relpath)
        text = "\n\n".join("\n".join(f"{m['role']}: {m['content']}" for m in example.messages)
                           for example in chat.examples)
    else:
        one = DataReport(root=report.root, files=[file_report], max_file_bytes=report.max_file_bytes,
                         _texts=report._texts)
        parts: list[str] = []
        size = 0
        for document in iter_documents(one):
            parts.append(document.text)
            size += len(document.text)
            if size > limit_chars:
                break
        text = "\n\n".join(parts)
    total = len(text) if len(text) <= limit_chars else max(len(text), file_report.chars)
    return FileText(relpath, text[:limit_chars], cut=len(text) > limit_chars, total_chars=total)
