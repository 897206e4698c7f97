"""Is an answer right? A normalised match of the reference's key span (a number, a date, a name).

An answer is *correct* when at least ``SPAN_RECALL_THRESHOLD`` of the key span's words appear among the
answer's first ``ANSWER_WORDS`` words, after normalisation: case folded, punctuation and articles
dropped, thousands separators removed, number words written as digits ("nine" = "9"). Reading only the
answer's opening keeps a model that lists every name it knows from scoring by luck.
"""

from __future__ import annotations

import re

#: A span counts as found when this share of its words is in the answer ("Teodora Vask" for
#: "Admiral Teodora Vask" is 2/3, found; "Vask" alone is 1/3, not found).
SPAN_RECALL_THRESHOLD = 0.6
#: Only the answer's opening is read.
ANSWER_WORDS = 60

_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_ARTICLES = frozenset({"a", "an", "the", "about", "around", "roughly", "nearly", "almost", "exactly", "of"})
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")


def _number_words(words: list[str]) -> list[str]:
    """'thirty-six' → '36', 'nine thousand' → '9000', 'a hundred' stays words where unsure."""
    out: list[str] = []
    for word in words:
        parts = word.split("-")
        if len(parts) == 2 and parts[0] in _TENS and parts[1] in _UNITS:
            out.append(str(_TENS[parts[0]] + _UNITS[parts[1]]))
        elif word in _UNITS:
            out.append(str(_UNITS[word]))
        elif word in _TENS:
            out.append(str(_TENS[word]))
        elif word in ("thousand", "million", "hundred") and out and out[-1].isdigit():
            out[-1] = str(int(out[-1]) * {"thousand": 1000, "million": 1_000_000, "hundred": 100}[word])
        else:
            out.append(word)
    return out


def normalise(text: str) -> list[str]:
    """The words of ``text`` as compared: lower case, no punctuation or articles, numbers as digits."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.casefold())
    words = [w.replace("’", "'") for w in _WORD.findall(text)]
    words = [w[:-2] if w.endswith("'s") else w for w in words]
    return [w for w in _number_words(words) if w not in _ARTICLES]


def span_recall(answer: str, span: str) -> float:
    """The share of the span's words found in the answer's opening (0 when the span has no words)."""
    wanted = normalise(span)
    if not wanted:
        return 0.0
    said = set(normalise(" ".join(answer.split()[:ANSWER_WORDS])))
    return sum(1 for w in wanted if w in said) / len(wanted)


def is_correct(answer: str, span: str) -> bool:
    """True when ``answer`` holds the key ``span`` (see the module's rule and threshold)."""
    return span_recall(answer, span) >= SPAN_RECALL_THRESHOLD
