"""Word documents (.docx), read with python-docx (MIT).

Body paragraphs and tables are read in document order: headings stay as their own paragraphs, list
items as lines, a table row as "Header: cell; Header: cell.". Page headers, footers, comments and
images are not part of the body and are not read (said in ``dropped`` when present).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from llmcustoms.data.formats.types import ExtractedText, ExtractError, paragraphs_text, plural
from llmcustoms.data.formats.zipguard import open_checked


def _row_text(cells: list[str], header: list[str]) -> str:
    if header and len(header) == len(cells):
        text = "; ".join(f"{h}: {c}" for h, c in zip(header, cells, strict=True) if c)
    else:
        text = "; ".join(c for c in cells if c)
    return text + "." if text and not text.endswith((".", "!", "?")) else text


def _table_paragraphs(table: Any) -> list[str]:
    rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in table.rows]
    if not rows:
        return []
    header, body = (rows[0], rows[1:]) if len(rows) > 1 else ([], rows)
    return [text for text in (_row_text(cells, header) for cells in body) if text]


def extract(path: Path) -> ExtractedText:
    """The text of the Word document at ``path``."""
    with open_checked(path, "Word (.docx)") as archive:
        names = set(archive.namelist())
    if "word/document.xml" not in names:
        raise ExtractError("is not a Word document (it has no word/document.xml; an old .doc file must be saved "
                           "as .docx); skipped it.")
    import docx  # heavy: only when a Word file is read
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ExtractError(f"is not a readable Word document ({type(exc).__name__}); skipped it.") from None
    except Exception:  # noqa: BLE001 - lxml's XMLSyntaxError and python-docx's own errors: a damaged file
        raise ExtractError("is not a readable Word document (its XML is damaged); skipped it.") from None
    paragraphs: list[str] = []
    headings = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            paragraphs.extend(_table_paragraphs(block))
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        # The style's id straight from the XML: ``block.style`` looks the style up by XPath each time
        # (measured: 6.4 s instead of 0.9 s for a 370,000-word document).
        style = block._p.style or ""
        if style.startswith(("Heading", "Title")):
            headings += 1
        paragraphs.append(text)
    dropped: list[str] = []
    furniture = sum(1 for name in names if name.startswith(("word/header", "word/footer")))
    if furniture:
        dropped.append(plural(furniture, "page header/footer"))
    images = sum(1 for name in names if name.startswith("word/media/"))
    if images:
        dropped.append(plural(images, "image"))
    result = ExtractedText(text=paragraphs_text(paragraphs), format="docx", units=max(1, headings), unit="sections",
                           dropped=dropped)
    return result
