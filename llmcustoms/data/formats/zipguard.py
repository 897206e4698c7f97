"""Checks a ZIP container (.docx, .epub) before a library unpacks it: no ZIP bomb, no damaged archive.

The sizes a ZIP declares are read with the standard library's ``zipfile``; a file that would unpack to
more than ``MAX_UNPACKED_BYTES``, or a member that expands more than ``MAX_RATIO`` times, is refused
before anything is decompressed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from llmcustoms.data.formats.types import ExtractError

#: A document that unpacks to more than this is refused (a 300-page novel's EPUB unpacks to ~5 MB).
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
#: A member above 1 MB that expands more than this many times is a ZIP bomb (text compresses ~5-20×).
MAX_RATIO = 200
#: More members than this is not a document.
MAX_MEMBERS = 20_000


def open_checked(path: Path, kind: str) -> zipfile.ZipFile:
    """``path`` opened as a ZIP after the bomb checks; ExtractError ('is not a readable …') otherwise."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ExtractError(f"is not a readable {kind} file (the file is damaged or cut short); skipped it.") from None
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    bomb = len(infos) > MAX_MEMBERS or total > MAX_UNPACKED_BYTES or any(
        info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(1, info.compress_size) for info in infos
    )
    if bomb:
        archive.close()
        raise ExtractError(f"is a {kind} file that would unpack to {total / 1024**2:,.0f} MB from "
                           f"{path.stat().st_size / 1024:,.0f} KB (a ZIP bomb); skipped it.")
    return archive


def read_member(archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """One member's bytes; ExtractError when it is missing or damaged."""
    try:
        return archive.read(name)
    except KeyError:
        raise ExtractError(f"is not a complete {kind} file ('{name}' is missing from it); skipped it.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise ExtractError(f"is not a readable {kind} file ('{name}' in it is damaged); skipped it.") from None
