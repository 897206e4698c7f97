"""Sentences: where one ends in any script, splitting a text into them and joining them back.

Shared by the data path (chunking, the facts in the text, counting) and the generators (the offline
generator answers with a chunk's own sentences).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A blank line (spaces or tabs allowed on it): where one paragraph ends and the next begins.
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
# A sentence ends with . ! ? (optionally followed by a closing quote or bracket) before whitespace,
# or with a full-width 。！？ (Chinese, Japanese) after which no space is written: there the split
# keeps the closing 」』） with the sentence and needs no whitespace.
_CJK_ENDS = "。！？"
_CJK_CLOSERS = "」』）》〉”’"
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+"
    rf"|(?:(?<=[{_CJK_ENDS}])|(?<=[{_CJK_ENDS}][{_CJK_CLOSERS}]))(?![{_CJK_ENDS}{_CJK_CLOSERS}])\s*"
)
#: After these marks CJK writes no space before the next sentence.
CJK_NO_SPACE_AFTER = _CJK_ENDS + "」』）》〉"
#: The characters that end a sentence, in any script (a line ending in one is not a title).
SENTENCE_END_CHARS = ".!?" + _CJK_ENDS
#: What the last character of a whole sentence can be: an end mark or a closing quote or bracket.
SENTENCE_CLOSE_CHARS = SENTENCE_END_CHARS + "\"'”’)" + _CJK_CLOSERS


def join_sentences(sentences: Iterable[str]) -> str:
    """Sentences as one text: a space between them, none after a full-width 。！？ or 」 (CJK writes none)."""
    out: list[str] = []
    for sentence in sentences:
        if out and out[-1][-1:] not in CJK_NO_SPACE_AFTER:
            out.append(" ")
        out.append(sentence)
    return "".join(out)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light rule: split after . ! ? followed by whitespace, or after 。！？).

    Paragraphs never share a sentence, and a short first line without a full stop (a title)
    is a sentence of its own.
    """
    sentences: list[str] = []
    for paragraph in PARAGRAPH_BREAK.split(text):
        head, newline, rest = paragraph.strip().partition("\n")
        if newline and len(head) < 100 and head.rstrip()[-1:] not in SENTENCE_END_CHARS + ":;,：；，":
            sentences.append(head.strip())
            paragraph = rest
        sentences.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s and s.strip())
    return sentences
