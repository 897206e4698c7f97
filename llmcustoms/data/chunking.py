"""Cutting prose into chunks on paragraph, then sentence, then word boundaries, with a little overlap.

Used by the offline generator and by the Groq generator (one request per chunk). Linear in the
text's length, so a single 1 MB line without a full stop is cut quickly too.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmcustoms.text.sentences import CJK_NO_SPACE_AFTER, PARAGRAPH_BREAK, split_sentences

DEFAULT_MAX_CHARS = 1500
DEFAULT_OVERLAP_CHARS = 150


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
    for paragraph in PARAGRAPH_BREAK.split(text):
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
            if i and (new_paragraph or units[i - 1][0][-1:] not in CJK_NO_SPACE_AFTER):
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
