"""Reading folders in the data tests: a paragraph of prose, reading a folder while checking it is left unchanged,
and the one-sentence check of a message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llmcustoms.data.documents import iter_documents
from llmcustoms.data.reader import validate_folder

PROSE = (
    "The Harrowick lighthouse stands on a cliff above the harbour. It was built in 1857 and its bell "
    "is rung by the tide. Fishermen say they can hear it from twelve kilometres away in thick fog.\n\n"
    "Every November the keepers paint the tower white again, and the village holds a small festival "
    "with lanterns, brine cakes and bitterleaf tea.\n"
)


def snapshot(root: Path) -> dict[str, tuple]:
    """Bytes, mtime and mode of everything under root (links and FIFOs by lstat only, never opened)."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) \
                if stat.S_ISLNK(st.st_mode) else None
            state[str(path.relative_to(root))] = (content, st.st_mtime_ns, st.st_mode, st.st_size)
    return state


def validate_unchanged(root: Path, **kwargs):
    """validate_folder + reading every document, asserting the folder is byte-for-byte the same after."""
    before = snapshot(root) if root.is_dir() else None
    report = validate_folder(root, **kwargs)
    documents = list(iter_documents(report)) if report.ok else []
    if before is not None:
        assert snapshot(root) == before
    return report, documents


def file_report(report, relpath):
    return next(f for f in report.files if f.relpath == relpath)


def assert_sentence(message: str, *names: str) -> None:
    """One sentence a person can act on: no newline, no traceback, ends with a full stop, names the file."""
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith(".")
    for name in names:
        assert name in message, (name, message)
