"""Words for matching an answer to a passage: lower-cased, stopwords out, CJK per character and bigram.

BM25 and the verdict use the same tokens, so a word the verdict looks for is a word the index knows.
A light English suffix rule ("harbours" → "harbour", "cities" → "city") lets a plural match its
singular; numbers stay whole ("1842", "3.5").
"""

from __future__ import annotations

import re

from llmcustoms.text.terms import STOPWORDS

# Han, Hiragana, Katakana, Hangul: scripts written without spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"(?P<num>\d+(?:[.,]\d+)*)|(?P<cjk>[{_CJK}]+)|(?P<word>[^\W\d_{_CJK}]+(?:['’][^\W\d_{_CJK}]+)*)")
# Japanese particles and endings (は, の, です) are hiragana: pairs holding one say little.
_KANA_PARTICLE = re.compile("[\u3040-\u309f]")
# Words too common in answers to count as a claim, beyond the key-term stopwords.
_ANSWER_FILLER = frozenset("""
answer question text document documents passage think know sure yes answers tell
""".split())


def _normalise(word: str) -> str:
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str, keep_stopwords: bool = False, cjk_singles: bool = True) -> list[str]:
    """The matching tokens of ``text`` in order (CJK runs give each character and each adjacent pair;
    without ``cjk_singles`` a run of two or more gives only its pairs, which carry the meaning)."""
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        if match.group("num"):
            out.append(match.group("num").replace(",", ""))
        elif match.group("cjk"):
            run = match.group("cjk")
            if cjk_singles or len(run) == 1:
                out.extend(run)
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            word = match.group("word")
            if keep_stopwords or (word not in STOPWORDS and len(word) > 1):
                out.append(_normalise(word))
    return out


def claim_tokens(answer: str, question: str) -> list[str]:
    """What the answer claims beyond the question: its content tokens not in the question, in order, once each."""
    asked = set(tokens(question))
    seen: set[str] = set()
    out = []
    for token in tokens(answer, cjk_singles=False):
        if token in asked or token in seen or token in _ANSWER_FILLER or _KANA_PARTICLE.search(token):
            continue
        seen.add(token)
        out.append(token)
    return out


def mark_tokens(answer: str) -> set[str]:
    """The answer's tokens worth marking in a passage (its words and numbers; CJK pairs without particles)."""
    return {t for t in tokens(answer, cjk_singles=False) if not _KANA_PARTICLE.search(t)}


def is_number(token: str) -> bool:
    """True for a number token ("1842", "3.5")."""
    return token[:1].isdigit()


def spans(text: str, wanted: set[str]) -> list[tuple[int, int]]:
    """Character spans in ``text`` of the words (or CJK characters) whose token is in ``wanted``."""
    found: list[tuple[int, int]] = []
    lowered = text.lower()
    for match in _TOKEN.finditer(lowered):
        if match.group("num"):
            if match.group("num").replace(",", "") in wanted:
                found.append(match.span())
        elif match.group("cjk"):
            start = match.start()
            run = match.group("cjk")
            for i, char in enumerate(run):
                if char in wanted or run[i:i + 2] in wanted or (i and run[i - 1:i + 1] in wanted):
                    found.append((start + i, start + i + 1))
        elif _normalise(match.group("word")) in wanted:
            found.append(match.span())
    return _merge(found)


def _merge(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
