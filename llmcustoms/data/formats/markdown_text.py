"""Markdown as plain sentences, read with markdown-it-py (CommonMark with tables; MIT).

Headings stay as their own paragraphs (the context of the text under them); emphasis and links keep
their words; images, code blocks, raw HTML and YAML/TOML front matter are left out and counted;
list items become lines; a table row becomes "Header: cell; Header: cell.".
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from llmcustoms.data.formats.types import ExtractedText, paragraphs_text, plural

#: Front matter: a YAML (---) or TOML (+++) block at the very top of the file.
_FRONT_MATTER = re.compile(r"\A(?:---[ \t]*\n.*?\n(?:---|\.\.\.)|\+\+\+[ \t]*\n.*?\n\+\+\+)[ \t]*(?:\n|\Z)", re.DOTALL)


def _inline_text(token: Any, dropped: Counter[str]) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")  # the writer's line breaks stay: "Question: …" / "Answer: …" lines
        elif child.type == "image":
            dropped["image"] += 1
        elif child.type == "html_inline":
            continue
    lines = ("".join(parts)).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


def markdown_to_text(source: str) -> tuple[str, Counter[str], int]:
    """(paragraphs, what was dropped by kind, headings) of a Markdown text."""
    from markdown_it import MarkdownIt  # only when Markdown is read

    dropped: Counter[str] = Counter()
    match = _FRONT_MATTER.match(source)
    if match:
        dropped["front matter block"] += 1
        source = source[match.end():]
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    paragraphs: list[str] = []
    headings = 0
    table_header: list[str] = []
    row: list[str] = []
    in_head = in_cell = False
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            headings += 1
        elif kind in ("fence", "code_block"):
            dropped["code block"] += 1
        elif kind == "html_block":
            dropped["HTML block"] += 1
        elif kind == "thead_open":
            in_head, table_header = True, []
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = []
        elif kind in ("th_open", "td_open"):
            in_cell = True
        elif kind in ("th_close", "td_close"):
            in_cell = False
        elif kind == "tr_close" and not in_head:
            if table_header and len(table_header) == len(row):
                pairs = [f"{h}: {c}" for h, c in zip(table_header, row, strict=True) if c]
                sentence = "; ".join(pairs)
            else:
                sentence = "; ".join(c for c in row if c)
            if sentence:
                paragraphs.append(sentence + ".")
        elif kind == "inline":
            text = _inline_text(token, dropped)
            if in_cell:
                (table_header if in_head else row).append(text)
            elif text:
                paragraphs.append(text)
    return paragraphs_text(paragraphs), dropped, headings


def extract(path: Path) -> ExtractedText:
    """The plain text of the Markdown file at ``path`` (UTF-8; bad bytes replaced)."""
    source = path.read_bytes().decode("utf-8-sig", errors="replace").replace("\r\n", "\n")
    text, dropped, headings = markdown_to_text(source)
    return ExtractedText(text=text, format="markdown", units=max(1, headings), unit="sections",
                         dropped=[plural(n, k) for k, n in sorted(dropped.items())])
