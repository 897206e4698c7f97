"""Checks that a generated answer comes from its chunk, and that a question is not asked twice.

A language model asked for Q&A pairs sometimes answers from what it knows rather than from the
text it was given. Training on such pairs teaches the small model facts the user never wrote, so
each answer must share enough *content words* with its chunk. The check is lexical on purpose:
it is cheap, needs no model, and the prompt asks the server to reuse the text's wording.
"""

from __future__ import annotations

import re
import unicodedata

#: Default share of an answer's content words that must also appear in the chunk.
DEFAULT_MIN_OVERLAP = 0.5

# Function words carry no facts; counting them would let an invented answer look grounded.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don down during
    each either etc every few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how however i if in into is isn it its itself just least less let like made
    make many may me might more most much must mustn my myself neither no nor not now of off often on
    once one only or other ought our ours ourselves out over own per rather same shall shan she should
    shouldn since so some such than that the their theirs them themselves then there these they this
    those though through thus to too under until up upon us use used uses using very via was wasn we
    were weren what when where whether which while who whom whose why will with within without won
    would wouldn yes yet you your yours yourself yourselves
    text passage document according called known
    """.split()
)

_WORD = re.compile(r"\w+", re.UNICODE)
# Scripts written without spaces: each character is a unit of meaning for the overlap check,
# otherwise a whole Chinese clause would be one "word" and nothing would ever match.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _stem(word: str) -> str:
    """A crude stem: plural 's' dropped, long words cut to six letters ("completed" ~ "completion")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:6] if len(word) > 6 else word


def content_words(text: str) -> set[str]:
    """The stemmed content words of ``text``: no stopwords, no one- or two-letter words (numbers kept)."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    text = re.sub(r"'s\b", "", text)
    words: set[str] = set()
    for token in _WORD.findall(text):
        token = token.strip("_")
        if not token:
            continue
        if _UNSPACED.search(token):
            words.update(ch for ch in token if _UNSPACED.match(ch))
            continue
        if token.isdigit():
            words.add(token)
        elif len(token) >= 3 and token not in STOPWORDS:
            words.add(_stem(token))
    return words


def grounding_score(answer: str, chunk_words: set[str] | str) -> float:
    """The share of ``answer``'s content words found in the chunk (0.0 when the answer has none)."""
    if isinstance(chunk_words, str):
        chunk_words = content_words(chunk_words)
    answer_words = content_words(answer)
    if not answer_words:
        return 0.0  # "Yes." teaches nothing about the user's text
    return len(answer_words & chunk_words) / len(answer_words)


def is_grounded(answer: str, chunk_words: set[str] | str, min_overlap: float = DEFAULT_MIN_OVERLAP) -> bool:
    """True when enough of ``answer``'s content words come from the chunk."""
    return grounding_score(answer, chunk_words) >= min_overlap


def normalise_question(question: str) -> str:
    """The form two questions share when they are the same question: casefolded, no punctuation."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(_WORD.findall(text)).replace("_", " ").strip()
