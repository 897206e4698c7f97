"""Cutting prose into chunks on paragraph, then sentence, then word boundaries, with a little overlap.

Used by the offline generator and by the Groq generator (one request per chunk). Linear in the
text's length, so a single 1 MB line without a full stop is cut quickly too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

DEFAULT_MAX_CHARS = 1500
DEFAULT_OVERLAP_CHARS = 150

_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")
# A sentence ends with . ! ? (optionally followed by a closing quote or bracket) before whitespace,
# or with a full-width 。！？ (Chinese, Japanese) after which no space is written: there the split
# keeps the closing 」』） with the sentence and needs no whitespace.
_CJK_ENDS = "。！？"
_CJK_CLOSERS = "」』）》〉”’"
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+"
    rf"|(?:(?<=[{_CJK_ENDS}])|(?<=[{_CJK_ENDS}][{_CJK_CLOSERS}]))(?![{_CJK_ENDS}{_CJK_CLOSERS}])\s*"
)
_CJK_NO_SPACE_AFTER = _CJK_ENDS + "」』）》〉"
#: The characters that end a sentence, in any script (a line ending in one is not a title).
SENTENCE_END_CHARS = ".!?" + _CJK_ENDS
#: What the last character of a whole sentence can be: an end mark or a closing quote or bracket.
SENTENCE_CLOSE_CHARS = SENTENCE_END_CHARS + "\"'”’)" + _CJK_CLOSERS


def join_sentences(sentences: Iterable[str]) -> str:
    """Sentences as one text: a space between them, none after a full-width 。！？ or 」 (CJK writes none)."""
    out: list[str] = []
    for sentence in sentences:
        if out and out[-1][-1:] not in _CJK_NO_SPACE_AFTER:
            out.append(" ")
        out.append(sentence)
    return "".join(out)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light rule: split after . ! ? followed by whitespace, or after 。！？).

    Paragraphs never share a sentence, and a short first line without a full stop (a title)
    is a sentence of its own.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPHS.split(text):
        head, newline, rest = paragraph.strip().partition("\n")
        if newline and len(head) < 100 and head.rstrip()[-1:] not in SENTENCE_END_CHARS + ":;,：；，":
            sentences.append(head.strip())
            paragraph = rest
        sentences.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s and s.strip())
    return sentences


def _hard_split(text: str, max_chars: int) -> Iterator[str]:
    """Pieces of at most ``max_chars``, cut at the last whitespace when there is one."""
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = text.rfind(" ", start + max_chars // 2, end)
        if cut <= start:
            cut = end
        yield text[start:cut].strip()
        start = cut
    tail = text[start:].strip()
    if tail:
        yield tail


def _units(text: str, max_chars: int) -> Iterator[tuple[str, bool]]:
    """(piece, starts_paragraph) with each piece at most ``max_chars`` long."""
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            yield paragraph, True
            continue
        first = True
        for sentence in split_sentences(paragraph):
            for piece in (_hard_split(sentence, max_chars) if len(sentence) > max_chars else (sentence,)):
                yield piece, first
                first = False


def chunk_text(text: str, max_chars: int = DEFAULT_MAX_CHARS, overlap_chars: int = DEFAULT_OVERLAP_CHARS) -> list[str]:
    """Chunks of at most ``max_chars`` characters, cut on paragraph then sentence boundaries.

    Each chunk after the first starts with the last sentence(s) of the previous chunk when they
    fit in ``overlap_chars`` (so a fact split across the boundary is seen whole at least once).
    Paragraphs are joined with a blank line, sentences of one paragraph with a space.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    overlap_chars = max(0, min(overlap_chars, max_chars // 2))
    chunks: list[str] = []
    current: list[tuple[str, bool]] = []
    size = 0
    fresh = 0  # units in `current` that are not overlap from the previous chunk

    def render(units: list[tuple[str, bool]]) -> str:
        out: list[str] = []
        for i, (piece, new_paragraph) in enumerate(units):
            if i and (new_paragraph or units[i - 1][0][-1:] not in _CJK_NO_SPACE_AFTER):
                out.append("\n\n" if new_paragraph else " ")
            out.append(piece)
        return "".join(out)

    for unit in _units(text, max_chars):
        extra = len(unit[0]) + (2 if current else 0)
        if current and size + extra > max_chars:
            if fresh:
                chunks.append(render(current))
            # Carry the tail sentences that fit in the overlap budget into the next chunk.
            tail: list[tuple[str, bool]] = []
            tail_size = 0
            for piece, new_paragraph in reversed(current):
                if tail_size + len(piece) + 2 > overlap_chars or len(tail) + 1 >= len(current):
                    break
                tail.insert(0, (piece, new_paragraph))
                tail_size += len(piece) + 2
            if tail_size + len(unit[0]) + 2 > max_chars:
                tail, tail_size = [], 0
            current, size, fresh = tail, tail_size, 0
            extra = len(unit[0]) + (2 if current else 0)
        current.append(unit)
        size += extra
        fresh += 1
    if current and fresh:
        chunks.append(render(current))
    return chunks
