"""E-books (.epub), read with the standard library's zipfile and ElementTree, and selectolax for the chapters.

EbookLib is not used: it is AGPL-3.0, which the default install avoids. An EPUB is a ZIP holding an
OPF package file whose spine lists the chapters in reading order; each chapter is XHTML, read by the
web-page reader (``web.html_to_text``). The navigation document and the NCX table of contents are
not chapters and are skipped.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from llmcustoms.data.formats.types import ExtractedText, ExtractError, plural
from llmcustoms.data.formats.web import describe_dropped, html_to_text
from llmcustoms.data.formats.zipguard import open_checked, read_member

_KIND = "EPUB"


def _xml(data: bytes, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError:
        raise ExtractError(f"is not a readable EPUB ('{name}' in it is damaged); skipped it.") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _spine(archive_names: set[str], container: ElementTree.Element, read: Callable[[str], bytes]) -> tuple[str, list[str]]:
    """(the OPF's path, the chapters' paths in reading order)."""
    rootfile = next((el.get("full-path") for el in container.iter() if _local(el.tag) == "rootfile"), None)
    if not rootfile:
        raise ExtractError("is not a complete EPUB (its container names no package file); skipped it.")
    package = _xml(read(rootfile), rootfile)
    base = posixpath.dirname(rootfile)
    manifest: dict[str, tuple[str, str, str]] = {}
    for el in package.iter():
        if _local(el.tag) == "item" and el.get("id") and el.get("href"):
            href = posixpath.normpath(posixpath.join(base, el.get("href", "").split("#")[0]))
            manifest[el.get("id", "")] = (href, el.get("media-type", ""), el.get("properties", ""))
    chapters: list[str] = []
    for el in package.iter():
        if _local(el.tag) != "itemref" or el.get("idref") not in manifest:
            continue
        href, media, properties = manifest[el.get("idref", "")]
        if "nav" in properties.split() or "html" not in media or href not in archive_names:
            continue
        chapters.append(href)
    return rootfile, chapters


def extract(path: Path) -> ExtractedText:
    """The chapters of the EPUB at ``path``, in reading order."""
    with open_checked(path, _KIND) as archive:
        names = set(archive.namelist())

        def read(name: str) -> bytes:
            return read_member(archive, name, _KIND)

        container = _xml(read("META-INF/container.xml"), "META-INF/container.xml")
        _, chapters = _spine(names, container, read)
        if not chapters:
            raise ExtractError("is an EPUB whose spine lists no chapters; skipped it.")
        texts: list[str] = []
        dropped: Counter[str] = Counter()
        empty = 0
        for chapter in chapters:
            text, chapter_dropped, _ = html_to_text(read(chapter))
            dropped.update(chapter_dropped)
            if text.strip():
                texts.append(text)
            else:
                empty += 1  # a cover or an image page
    result = ExtractedText(text="\n\n".join(texts), format="epub", units=len(texts), unit="chapters",
                           dropped=describe_dropped(dropped))
    if empty:
        result.dropped.append(plural(empty, "chapter without text (cover or images)",
                                     "chapters without text (covers or images)"))
    return result
