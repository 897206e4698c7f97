"""The offline generator: instruction examples built from a chunk's own sentences, no server needed.

For each chunk it finds the key terms (capitalised names and phrases, else frequent content
words) and builds questions about them answered with the chunk's sentences that mention them,
a definition question when a sentence says "<term> is …", an extractive summary and a
continuation. Deterministic: the same chunks always give the same examples.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence

from llmcustoms.qa.generator import ProgressCallback
from llmcustoms.qa.parallel import map_slices, worker_count
from llmcustoms.text.sentences import SENTENCE_CLOSE_CHARS, join_sentences, split_sentences
from llmcustoms.text.terms import CAP_PHRASE, STOPWORDS, title_from_source
from llmcustoms.text.types import Chunk, Example
from llmcustoms.utils.gcpause import paused_gc

_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{3,}")
_DEFINITION = re.compile(r"\s+(is|was|are|were)\s+")

ABOUT_TEMPLATES = (
    "What does the text say about {term}?",
    "What do you know about {term}?",
    "Tell me about {term}.",
    "What can you tell me about {term}?",
)


_TOKEN = re.compile(r"\w+")


def _spaced(text: str) -> str:
    """The text's words joined by single spaces, with a space at each end.

    Whole-word matching then becomes a plain substring test (``" Velmor "`` is not inside
    ``" Velmoria "``), which is far faster than a regular expression per term.
    """
    return " " + " ".join(_TOKEN.findall(text)) + " "


def _count(spaced: str, term: str) -> int:
    """Whole-word occurrences of ``term`` in a ``_spaced`` text."""
    key = f" {term} " if term.replace(" ", "").isalnum() else _spaced(term)
    return spaced.count(key)


def _sentence_start(text: str, at: int) -> bool:
    before = text[max(0, at - 8):at].rstrip(" \t\"'“‘(")  # a few characters back are enough
    if not before:
        return True
    return before[-1] in ".!?:\n"


def key_terms(text: str, limit: int = 5, spaced: str | None = None) -> list[str]:
    """The chunk's most salient terms: capitalised names/phrases first, then frequent content words.

    A name is scored by how often it occurs (inside longer names too), multi-word names a little
    higher; a term sharing a word with a better one is dropped, so the terms cover different things.
    A single capitalised word seen once, at the start of a sentence, is not taken for a name.
    """
    candidates: dict[str, int] = {}  # phrase -> first position (-1: seen once, at a sentence start)
    for match in CAP_PHRASE.finditer(text):
        phrase = match.group()
        known = candidates.get(phrase)
        if known is not None:
            if known < 0:
                candidates[phrase] = match.start()  # seen again: a name after all
            continue
        if " " in phrase:
            last = phrase.rsplit(" ", 1)[1]
            if last.lower() in STOPWORDS:  # "Velmoria Most" → "Velmoria"
                phrase = phrase.rsplit(" ", 1)[0].rstrip()
            candidates.setdefault(phrase, match.start())
        else:
            candidates[phrase] = -1 if _sentence_start(text, match.start()) else match.start()
    spaced = spaced if spaced is not None else _spaced(text)
    scores = {p: _count(spaced, p) * (1 + 0.5 * p.count(" ")) for p, pos in candidates.items() if pos >= 0}
    ranked = sorted(scores, key=lambda p: (-scores[p], candidates[p]))
    terms: list[str] = []
    used: set[str] = set()
    for phrase in ranked:
        words = {w.lower() for w in phrase.split()} - STOPWORDS
        if words & used:
            continue
        terms.append(phrase)
        used |= words
        if len(terms) >= limit:
            return terms
    counts = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS)
    for word, _ in counts.most_common():
        if len(terms) >= limit:
            break
        if word not in used and not any(word.startswith(u) or u.startswith(word) for u in used):
            terms.append(word)
            used.add(word)
    return terms


def _with_article(term: str, spaced: str) -> str:
    """'the Tide Engine' when the (``_spaced``) text mostly writes it with 'the', else the term as it is."""
    if not term[:1].isupper():
        return term
    key = _spaced(term)
    with_the = spaced.count(" the" + key) + spaced.count(" The" + key)
    return f"the {term}" if with_the * 2 >= max(1, spaced.count(key)) else term


def _is_heading(sentence: str) -> bool:
    """A title line: short and without a full stop ('Festivals of Velmoria')."""
    return len(sentence) < 100 and sentence[-1:] not in SENTENCE_CLOSE_CHARS


def _whole_word_at(text: str, term: str, start: int = 0, prefix_only: bool = False) -> bool:
    """True when ``term`` occurs in ``text`` not glued to other letters or digits.

    A plain ``in`` test first (fast, in C); the neighbours are checked only for real hits.
    With ``prefix_only`` only the character before the match must be a boundary.
    """
    at = text.find(term, start)
    while at >= 0:
        end = at + len(term)
        before_ok = at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")
        after_ok = prefix_only or end == len(text) or not (text[end].isalnum() or text[end] == "_")
        if before_ok and after_ok:
            return True
        at = text.find(term, at + 1)
    return False


class _Sentence(str):
    """A sentence that also keeps its lower-case form (plain words are matched in any case)."""

    lowered: str

    def __new__(cls, text: str) -> _Sentence:
        sentence = super().__new__(cls, text)
        sentence.lowered = text.lower()
        return sentence


def _mentions(sentence: str, term: str) -> bool:
    """Names match whole words, case-sensitively; plain words match as a word prefix, any case."""
    if term[:1].isupper():
        return _whole_word_at(sentence, term)
    lowered = sentence.lowered if isinstance(sentence, _Sentence) else sentence.lower()
    return _whole_word_at(lowered, term.lower(), prefix_only=True)


#: A worker process is worth starting for this many chunks (~0.4 s of work; spawning one costs ~0.2 s).
CHUNKS_PER_WORKER = 2000


def _examples_for_slice(pairs_per_chunk: int, max_answer_sentences: int, chunks: list[Chunk]) -> list[Example]:
    """One worker's share: the examples of ``chunks``, in order (module-level, so it can be pickled)."""
    return OfflineGenerator(pairs_per_chunk, max_answer_sentences).generate_here(chunks)


class OfflineGenerator:
    """Builds instruction examples from each chunk's sentences (a QAGenerator named 'offline')."""

    name = "offline"

    def __init__(self, pairs_per_chunk: int = 3, max_answer_sentences: int = 3) -> None:
        self.pairs_per_chunk = max(1, pairs_per_chunk)
        self.max_answer_sentences = max_answer_sentences

    def generate(self, chunks: list[Chunk], progress: ProgressCallback | None = None) -> list[Example]:
        """Up to ``pairs_per_chunk`` examples per chunk (fewer for chunks too short to ask about).

        Thousands of chunks are shared among worker processes (``qa/parallel.py``); the examples
        are the same, in the same order, as from one process.
        """
        if worker_count(len(chunks), CHUNKS_PER_WORKER) > 1:
            work = functools.partial(_examples_for_slice, self.pairs_per_chunk, self.max_answer_sentences)
            return map_slices(work, chunks, min_per_worker=CHUNKS_PER_WORKER, progress=progress)
        return self.generate_here(chunks, progress)

    def generate_here(self, chunks: list[Chunk], progress: ProgressCallback | None = None) -> list[Example]:
        """The examples of ``chunks`` built in this process (what each worker process runs)."""
        examples: list[Example] = []
        total = len(chunks)
        with paused_gc():
            for done, chunk in enumerate(chunks, 1):
                examples.extend(self.examples_for(chunk))
                if progress is not None and (done == total or done % 100 == 0):
                    progress(done, total)
        return examples

    def examples_for(self, chunk: Chunk) -> list[Example]:
        """The examples for one chunk, in a fixed order: about, definition, summary, about, continue."""
        sentences = [_Sentence(s) for s in split_sentences(chunk.text) if not _is_heading(s)]
        if not sentences or len(chunk.text.strip()) < 40:
            return []
        spaced = _spaced(chunk.text)
        terms = key_terms(chunk.text, spaced=spaced)
        named = {t: _with_article(t, spaced) for t in terms}
        # Which sentences mention each term, worked out once for every builder below.
        # (A plain substring test first: it is in C and rules out most sentences.)
        hits = {t: [i for i, sentence in enumerate(sentences)
                    if (t in sentence if t[:1].isupper() else t in sentence.lowered) and _mentions(sentence, t)]
                for t in terms}
        seed = zlib.crc32(chunk.source.encode("utf-8"))  # stable across runs (hash() is salted)
        builders: list[Callable[[], tuple[str, str] | None]] = []
        if terms:
            builders.append(lambda: self._about(named[terms[0]], hits[terms[0]], sentences, seed))
        if len(terms) > 1:
            builders.append(lambda: (self._definition(terms[1], named[terms[1]], sentences)
                                    or self._about(named[terms[1]], hits[terms[1]], sentences, seed + 1)))
        builders.append(lambda: self._summary(chunk, [hits[t] for t in terms], [named[t] for t in terms], sentences))
        if len(terms) > 2:
            builders.append(lambda: self._about(named[terms[2]], hits[terms[2]], sentences, seed + 2))
        builders.append(lambda: self._continuation(chunk, sentences))
        for term_index in range(3, len(terms)):
            term = terms[term_index]
            builders.append(functools.partial(self._about, named[term], hits[term], sentences, seed + term_index))

        examples: list[Example] = []
        seen: set[tuple[str, str]] = set()
        for build in builders:
            if len(examples) >= self.pairs_per_chunk:
                break
            pair = build()
            if pair is None or pair in seen:
                continue
            seen.add(pair)
            question, answer = pair
            examples.append(Example(
                messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                source=chunk.source, kind="offline",
            ))
        return examples

    def _about(self, shown: str, hits: list[int], sentences: Sequence[str], seed: int) -> tuple[str, str] | None:
        if not hits:
            return None
        template = ABOUT_TEMPLATES[seed % len(ABOUT_TEMPLATES)]
        return template.format(term=shown), join_sentences(sentences[i] for i in hits[: self.max_answer_sentences])

    def _definition(self, term: str, shown: str, sentences: Sequence[str]) -> tuple[str, str] | None:
        for i, sentence in enumerate(sentences):
            at = sentence.find(term)
            if at < 0 or at > 4:  # "<term> is …" or "The <term> was …"
                continue
            verb = _DEFINITION.match(sentence, at + len(term))
            if verb:
                answer = join_sentences(sentences[i: i + 2])
                return f"What {verb.group(1)} {shown}?", answer
        return None

    def _summary(
        self, chunk: Chunk, term_hits: list[list[int]], shown: list[str], sentences: Sequence[str]
    ) -> tuple[str, str] | None:
        if len(sentences) < 2:
            return None
        # Extractive: the sentences naming the most key terms, kept in their original order.
        score = Counter(i for hits in term_hits for i in hits)
        scored = sorted(range(len(sentences)), key=lambda i: (-score[i], i))
        keep = sorted(scored[: self.max_answer_sentences])
        answer = join_sentences(sentences[i] for i in keep)
        topic = " and ".join(shown[:2]) if shown else "its main points"
        title = title_from_source(chunk.source.rsplit(":", 1)[0])
        return f"Summarise the part of {title} about {topic}.", answer

    def _continuation(self, chunk: Chunk, sentences: Sequence[str]) -> tuple[str, str] | None:
        if len(sentences) < 2:
            return None
        opening = sentences[0]
        answer = join_sentences(sentences[1: 1 + self.max_answer_sentences])
        title = title_from_source(chunk.source.rsplit(":", 1)[0])
        return f'Continue this passage from {title}: "{opening}"', answer
