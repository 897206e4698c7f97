"""Fact-level questions from prose: every sentence that states a checkable fact, asked several ways.

A *fact* is one sentence of the user's text plus one *key span* in it: a date, a number with what it
counts, or a name. Each fact gets several questions that each stand on their own (they repeat the
sentence's subject, never "the text"): a question with the auxiliary moved to the front ("When was
Velmoria founded?"), a subject question ("Who founded Velmoria?"), the question asked in place
("Velmoria was founded in what year?"), a reversed question about the name that is the answer's
subject, and a fill-in. The answer is always the whole sentence as written (a complete sentence, never
a fragment), with a leading pronoun replaced by the name it stands for.

Why several phrasings: a fact seen in one wording is memorised as that wording; seen in several, the
model learns the fact, and answers a question worded in a way it never saw. That is what the knowledge
score (``llmcustoms.evaluation``) measures: for held-out facts one phrasing is kept out of training and
asked afterwards.

Rules, not a parser: nothing here downloads a model or calls a server, and a folder of a few MB is
handled in about a second.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

from llmcustoms.data.types import Example
from llmcustoms.text.sentences import SENTENCE_CLOSE_CHARS, join_sentences, split_sentences
from llmcustoms.text.terms import CAP_PHRASE, STOPWORDS

SpanKind = Literal["date", "year", "number", "person", "place", "name"]
QuestionForm = Literal["inverted", "subject", "in_place", "reversed", "fill_in", "embedded"]
#: Openings of an embedded question ("Do you know when Velmoria was founded?"), chosen per fact.
_EMBEDDED_OPENINGS = ("Do you know", "Can you tell me", "Tell me")

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
_DATE = re.compile(rf"\b(?:\d{{1,2}}\s+(?:{_MONTHS})(?:\s+\d{{3,4}})?|(?:{_MONTHS})\s+\d{{1,2}}(?:,\s*\d{{3,4}})?"
                   rf"|(?:{_MONTHS})\s+\d{{4}})\b")
_YEAR = re.compile(r"(?<![\d,.])\b(1[0-9]{3}|20[0-9]{2})\b(?!\d|[,.]\d|\s*(?:metres|meters|people|km|kilometres))")
_WORD_NUMBERS = ("two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
                 "|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred"
                 "|thousand|million")
_NUMBER = re.compile(rf"\b(?:\d[\d,]*(?:\.\d+)?(?:\s+(?:thousand|million|billion))?"
                     rf"|(?:{_WORD_NUMBERS})(?:[\s-](?:{_WORD_NUMBERS}|one))*)\b(?:\s+(?:per cent|percent))?"
                     r"(?:\s+(?P<unit>[a-z][a-z\-]+))?", re.IGNORECASE)
_NAMED_THING = re.compile(r"\b(?:called|named|known as|filled with|made of|made from|made with|brewed from|"
                          r"served with|covered with|covered in)\s+(?:an?\s+|the\s+)?[\"“']?"
                          r"(?P<thing>[A-Za-z][\w\-]*(?:\s+[A-Za-z][\w\-]*){0,3})")
_AUX = re.compile(r"\s(is|was|are|were|has|have|had|can|could|will|would|must|may|does|did|do)\s")
_PRONOUN = re.compile(r"^(It|She|He|They|Its|Her|His|Their)\s")
_PERSON_TITLES = frozenset("""Admiral Captain King Queen Prince Princess Lord Lady Sir Dame Dr Doctor Professor Mr Mrs Ms
Miss Saint St General Colonel Bishop Mayor Warden Engineer Master Mistress""".split())
_PLACE_WORDS = frozenset("""Isle Island Islands Mount Mountain River Sea Bay Harbour Harbor City Street Lake Valley Coast
Point Cape Hill Hills Road Square Bridge Lighthouse Village Town Port Strait Forest Gulf Ocean Peninsula""".split())
_PLACE_PREPS = frozenset({"in", "at", "on", "from", "to", "near", "into", "across", "off", "around"})
# Words that count things: "412,000 people" → "how many people"; units make "how many metres".
_UNIT_STOP = frozenset({"and", "or", "of", "in", "on", "at", "to", "by", "for", "from", "the", "a", "an", "with",
                        "is", "was", "are", "were", "he", "she", "it", "they", "we", "you", "his", "her", "its",
                        "their", "who", "which", "that", "across", "long", "high", "wide", "deep", "tall", "old"})
_NOT_SUBJECT = frozenset({"There", "This", "That", "These", "Those", "Here", "Each", "Every", "Some", "Many",
                          "Most", "All", "One"})

#: Sentences shorter or longer than this (in words) are not asked about: too little, or several facts in one.
MIN_WORDS, MAX_WORDS = 5, 60
#: At most this many facts per sentence (its most informative spans).
MAX_FACTS_PER_SENTENCE = 3


@dataclass
class Fact:
    """One checkable statement: a sentence of the text and the span a question about it asks for."""

    id: str  # "relpath:s<sentence>:<span index>"; questions of one fact share it
    source: str  # "relpath"
    sentence: str  # the answer, as written (a leading pronoun replaced by its name)
    span: str  # what the questions ask for; a correct answer must contain it
    kind: SpanKind
    questions: list[tuple[QuestionForm, str]] = field(default_factory=list)
    context: str = ""  # the sentence with its neighbours: what retrieval would put in a prompt

    @property
    def key(self) -> str:
        """What a right answer must contain: the span, or for a number the number alone
        ("1,742 paper lanterns" → "1,742": the count is the fact, the words after it may vary)."""
        if self.kind == "number":
            match = _NUMBER.match(self.span)
            if match is not None:
                unit = match.group("unit") or ""
                number = match.group()[: len(match.group()) - len(unit)].strip() if unit else match.group()
                return number.strip() or self.span
        return self.span

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {"id": self.id, "key": self.key, "source": self.source, "sentence": self.sentence, "span": self.span,
                "kind": self.kind, "context": self.context, "questions": [{"form": f, "question": q} for f, q in self.questions]}


def _strip_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".!;:").rstrip()


def _lower_first(text: str) -> str:
    """'The capital' → 'the capital', but 'Velmoria' stays (a name keeps its capital)."""
    first = text.split(" ", 1)[0]
    if first in ("The", "A", "An", "Its", "Their", "His", "Her", "Every", "Each", "Some", "Most", "Many", "All"):
        return first.lower() + text[len(first):]
    return text


def _clean_spaces(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:?.])", r"\1", text)
    text = re.sub(r",\s*([?.])", r"\1", text)
    return re.sub(r",\s*,", ",", text)


def _names(text: str) -> list[tuple[int, int, str]]:
    """Capitalised names (start, end, phrase); a name at the sentence start counts too."""
    found = []
    for match in CAP_PHRASE.finditer(text):
        phrase = match.group()
        words = phrase.split()
        while words and words[-1].lower() in STOPWORDS:
            words.pop()
        if not words:
            continue
        phrase = " ".join(words)
        for suffix in ("'s", "’s"):
            phrase = phrase[: -len(suffix)] if phrase.endswith(suffix) else phrase
        found.append((match.start(), match.start() + len(phrase), phrase))
    return found


def names_in(text: str) -> list[tuple[int, int, str]]:
    """The capitalised names in ``text`` as ``(start, end, phrase)``, its opening word left out (a question's
    first word is capitalised without being a name)."""
    return [(start, end, phrase) for start, end, phrase in _names(text) if start > 0]


def _is_person(phrase: str, before: str) -> bool:
    words = phrase.split()
    if words[0] in _PERSON_TITLES or before.rstrip().split(" ")[-1:] in (["Admiral"], ["Captain"]):
        return True
    if any(w in _PLACE_WORDS for w in words):
        return False
    # Two or three capitalised words with no place word, after "by"/"named"/"called": most often a person.
    return 2 <= len(words) <= 3 and before.rstrip().lower().endswith((" by", " named", " called", " engineer"))


def _spans(sentence: str) -> list[tuple[int, int, SpanKind]]:
    """Candidate key spans (start, end, kind), most informative first, never overlapping."""
    taken: list[tuple[int, int, SpanKind]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in taken)

    for match in _DATE.finditer(sentence):
        taken.append((match.start(), match.end(), "date"))
    for match in _YEAR.finditer(sentence):
        if free(match.start(), match.end()):
            taken.append((match.start(), match.end(), "year"))
    for match in _NUMBER.finditer(sentence):
        start, end = match.start(), match.end()
        if not free(start, end):
            continue
        unit = match.group("unit") or ""
        words = unit.split()
        while words and words[-1] in _UNIT_STOP:
            words.pop()
        if words and words[0] in _UNIT_STOP:
            words = []
        if match.group()[:1].isalpha() and not words:
            continue  # "three" alone counts nothing we can ask about
        end = match.start() + len(match.group().split(unit)[0].rstrip()) if unit else end
        if words:
            end = sentence.index(words[-1], end) + len(words[-1])
            following = re.match(r"\s+([a-z][a-z\-]+)\b", sentence[end:])
            plural = (words[-1].endswith("s") and not words[-1].endswith("ss")) or words[-1] in (
                "people", "children", "men", "women", "feet", "thousand", "million", "hundred")
            if following and not plural and following.group(1) not in _UNIT_STOP | STOPWORDS | _AFTER_VERB \
                    and not following.group(1).endswith(("ly", "ed")):
                end += following.end()  # "1,742 paper lanterns", "three inhabited islands"
        taken.append((start, end, "number"))
    for start, end, phrase in _names(sentence):
        if not free(start, end):
            continue
        before = sentence[:start]
        prep = before.rstrip().rsplit(" ", 1)[-1].lower() if before.strip() else ""
        kind: SpanKind = "person" if _is_person(phrase, before) else ("place" if prep in _PLACE_PREPS else "name")
        taken.append((start, end, kind))
    # Things named in lower case: "rakes called sleens", "known as kelpbread", "filled with goat cheese",
    # "made of seaweed flour". The phrase up to a comma, a preposition or the end, at most three words.
    for match in _NAMED_THING.finditer(sentence):
        start = match.start("thing")
        words = match.group("thing").split()
        kept = []
        for word in words[:3]:
            if word.lower() in STOPWORDS | _UNIT_STOP | _AFTER_VERB:
                break
            kept.append(word)
        if not kept:
            continue
        end = start + len(" ".join(kept))
        if free(start, end):
            taken.append((start, end, "name"))
    order = {"date": 0, "year": 0, "number": 1, "person": 2, "place": 3, "name": 4}
    return sorted(taken, key=lambda t: (order[t[2]], t[0]))


_IRREGULAR_PAST = {
    "became": "become", "began": "begin", "brought": "bring", "built": "build", "bought": "buy", "came": "come",
    "chose": "choose", "drew": "draw", "drove": "drive", "fell": "fall", "flew": "fly", "found": "find",
    "gave": "give", "grew": "grow", "held": "hold", "kept": "keep", "knew": "know", "led": "lead", "left": "leave",
    "lost": "lose", "made": "make", "meant": "mean", "met": "meet", "paid": "pay", "ran": "run", "rose": "rise",
    "said": "say", "sang": "sing", "sank": "sink", "saw": "see", "sent": "send", "set": "set", "shot": "shoot",
    "sold": "sell", "spent": "spend", "spoke": "speak", "stood": "stand", "swam": "swim", "taught": "teach",
    "told": "tell", "thought": "think", "took": "take", "threw": "throw", "understood": "understand",
    "went": "go", "won": "win", "wore": "wear", "wrote": "write", "put": "put", "lay": "lie", "laid": "lay",
    "hung": "hang", "dug": "dig", "fought": "fight", "froze": "freeze", "hid": "hide", "rang": "ring", "shone": "shine",
}
_NOT_VERBS = frozenset("""was is has its this his as us bus gas news series species always perhaps less unless
across towards afterwards thus yes various famous glass class grass moss cross dress press chess
red bed shed seed need reed feed bred hundred speed""".split())
_CONSONANT_DOUBLED = re.compile(r"([bdfgklmnprtv])\1ed$")
_LEADING_ADVERBIAL = re.compile(
    r"^(?P<adv>(?:In|On|At|Since|Before|After|By|Until|From|During|For|As|Around|About|Every|Each|Today|Later|Once"
    r"|Over|Within|Throughout|Under|With|Between|Twice|Once)\b[^,]{1,60}?),\s+"
    r"|^(?P<adv2>(?:In|On|Since|Before|After|By|Until|During|From)\s+(?:about\s+|around\s+)?"
    r"(?:\d{1,2}\s+[A-Z][a-z]+\s+\d{3,4}|[A-Z][a-z]+\s+\d{3,4}|\d{3,4}s?))\s+"
    r"|^(?P<adv3>(?:In|On|At|As|After|Before|By|During|For|From|Since|Until)\b[^,]{1,50}?)\s+(?=(?:he|she|it|they|we)\b)")
_CLAUSE_BREAK = re.compile(r",\s*(?:and|but|while|so|whereas|yet)\s+|;\s*|,\s*(?=(?:who|which|where|when|whose)\s)")
_WH_PREPS = _PLACE_PREPS | {"by", "for", "with", "since", "until", "about", "around", "roughly", "nearly", "over", "of",
                            "before", "after", "during", "within", "than", "as", "under"}
_APPROX = frozenset({"about", "around", "roughly", "nearly", "almost", "over", "some", "approximately", "exactly",
                     "just", "only", "more", "than", "a"})


_AFTER_VERB = frozenset("""on in at from to the a an its their his her with into over through across around for about
by up down out every each""".split())


def _lemma(verb: str) -> str:
    """Base form of a past or third-person verb ("completed" → "complete", "flows" → "flow"); a light rule."""
    low = verb.lower()
    if low in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[low]
    if low == "has":
        return "have"
    if low.endswith("ied"):
        return low[:-3] + "y"
    if low.endswith("ed"):
        if _CONSONANT_DOUBLED.search(low):
            return low[:-3]
        stem = low[:-2]
        if stem.endswith(("at", "ir", "ur", "ag", "id", "is", "iz", "os", "lv", "rv", "nc", "rc", "ut", "ok", "ud",
                          "ar", "ov", "as", "ac", "im", "in", "ib", "uc", "yp", "ys", "eas", "az", "pl", "bl", "dl", "gl", "kl",
                          "tl", "zl", "cl", "fl")) or low.endswith(
                ("ted", "sed", "ved", "ged", "ced", "zed")) and not stem.endswith(("nt", "st", "ct", "rt", "ft", "lt",
                                                                                     "pt", "xt", "ss", "nd", "ld")):
            return stem + "e" if not stem.endswith("e") else stem
        return stem
    if low.endswith("ies"):
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return low[:-2]
    if low.endswith("s") and not low.endswith("ss"):
        return low[:-1]
    return low


_AUXES = frozenset({"is", "was", "are", "were", "has", "have", "had", "can", "could", "will", "would", "must", "may",
                    "does", "did", "do", "should", "might"})


def _verb_at(words: list[str]) -> tuple[int, str] | None:
    """(index, kind) of the clause's main verb: 'aux' (is, was, has …), 'past' or 'present'; None if unsure."""
    for i, word in enumerate(words[:9]):
        low = word.lower().strip(",")
        if i == 0:
            continue
        if low in _AUXES:
            return i, "aux"
        if low in _IRREGULAR_PAST or (low.endswith("ed") and len(low) > 4 and low not in _NOT_VERBS):
            if words[i - 1].lower() in ("the", "a", "an", "of", "its", "their", "his", "her"):
                continue  # "the tinned fish", "a red roof"
            return i, "past"
        next_word = words[i + 1].lower() if i + 1 < len(words) else ""
        if next_word in _AUXES:
            continue  # "Brine cakes are …": the word before an auxiliary is a noun
        if low.endswith("s") and not low.endswith(("ss", "us", "is", "'s", "’s")) and low not in _NOT_VERBS \
                and word[:1].islower() and i <= 4 and words[i - 1].lower() not in ("the", "a", "an", "its", "their")\
                and (words[i - 1][:1].isupper() or (i + 1 < len(words) and words[i + 1].lower() in _AFTER_VERB)):
            return i, "present"
        if word[:1].islower() and i <= 5 and low not in STOPWORDS and not low.endswith(("ly", "s")) \
                and (words[i - 1].lower() in ("people", "children", "men", "women") or words[i - 1].endswith("s")) \
                and i + 1 < len(words) and words[i + 1].lower() in _AFTER_VERB:
            return i, "plural"  # "412,000 people live in …"
    return None


def _span_wh(kind: SpanKind, span: str, prep: str) -> tuple[str, str]:
    """(question word or phrase, alternative phrasing) asking for ``span``."""
    prep = prep.lower()
    if kind == "date":
        day = re.search(r"\d{1,2}\s+[A-Z]|[A-Z][a-z]+\s+\d{1,2}\b", span)
        return ("when", "on what date" if day else "in what year") if prep in ("on", "in", "") else \
            (f"{prep} what date" if day else f"{prep} when", "when")
    if kind == "year":
        if prep in ("in", ""):
            return "when", "in what year"
        return f"{prep} what year", "when"
    if kind == "number":
        unit_words = span.split()[1:]
        while unit_words and unit_words[0].lower() in ("thousand", "million", "hundred", "billion"):
            unit_words.pop(0)
        unit = " ".join(unit_words)
        how = f"how many {unit}" if unit else "what number"
        return (f"{prep} {how}" if prep and prep not in _APPROX else how), how
    if kind == "place":
        return "where", "in what place" if prep in ("in", "") else f"{prep} what place"
    if kind == "person":
        return "who", "which person"
    return "what", ""


def _clause_of(body: str, start: int) -> tuple[int, int, bool]:
    """The clause of ``body`` holding position ``start``: (begin, end, is_relative_clause)."""
    begin, relative = 0, False
    for match in _CLAUSE_BREAK.finditer(body):
        if match.end() <= start:
            begin = match.end()
            relative = body[match.end():].split(" ", 1)[0] in ("who", "which", "where", "when", "whose")
        elif match.start() >= start:
            return begin, match.start(), relative
    return begin, len(body), relative


def _questions(body: str, start: int, end: int, kind: SpanKind, last_subject: str | None = None
               ) -> list[tuple[QuestionForm, str]]:
    """The phrasings of one fact: ``body`` is the sentence without its full stop, the span at [start, end)."""
    span = body[start:end]
    questions: list[tuple[QuestionForm, str]] = []
    c_begin, c_end, relative = _clause_of(body, start)
    if not relative:
        questions.extend(_clause_questions(body[c_begin:c_end], start - c_begin, end - c_begin, kind, last_subject))
    # In place: the whole sentence with the span replaced by a question word.
    before, after = body[:start].rstrip(), body[end:].lstrip()
    prep = before.rsplit(" ", 1)[-1] if before else ""
    words_before = before.split()
    while words_before and words_before[-1].lower() in _APPROX | {"the"}:
        words_before.pop()
    lead = " ".join(words_before)
    wh, _alt = _span_wh(kind, span, "")
    if kind == "place" and prep.lower() in _PLACE_PREPS:
        lead = " ".join(words_before[:-1]) if words_before and words_before[-1].lower() in _PLACE_PREPS else lead
    elif kind in ("year", "date"):
        wh = "what year" if kind == "year" else ("what date" if wh in ("when", "on what date") else wh)
    elif kind == "person":
        wh = "whom" if prep.lower() in ("by", "to", "with", "for") else "who"
    if lead and len(lead.split()) >= 2:
        in_place = _clean_spaces(f"{_lower_first(lead)} {wh} {after}".strip())
        questions.append(("in_place", in_place[0].upper() + in_place[1:].rstrip(",") + "?"))
    questions.append(("fill_in", f"Fill in the blank: {_clean_spaces(body[:start] + '_____' + body[end:])}."))
    unique: list[tuple[QuestionForm, str]] = []
    seen: set[str] = set()
    for form, question in questions:
        key = question.casefold()
        if key not in seen and len(question.split()) >= 4:
            seen.add(key)
            unique.append((form, question))
    return unique


def _clause_questions(clause: str, start: int, end: int, kind: SpanKind, last_subject: str | None
                      ) -> list[tuple[QuestionForm, str]]:
    """Wh-questions from one clause: the subject asked for, or the auxiliary (or do/does/did) moved to the front."""
    span = clause[start:end]
    offset = 0
    adverbial = ""
    match = _LEADING_ADVERBIAL.match(clause)
    if match:
        adverbial = match.group("adv") or match.group("adv2") or match.group("adv3")
        offset = match.end()
    core = clause[offset:]
    words = core.split()
    found = _verb_at(words)
    if found is None:
        return []
    v_index, v_kind = found
    # Character position of the verb inside the clause
    pos = offset
    for w in words[:v_index]:
        pos = clause.index(w, pos) + len(w)
    verb_start = clause.index(words[v_index], pos)
    verb = words[v_index]
    subject = clause[offset:verb_start].strip().rstrip(",")
    if subject.lower() in ("he", "she", "it", "they"):
        if not last_subject:
            return []
        subject = last_subject
    if not subject or subject.split()[0] in _NOT_SUBJECT or subject.split()[0].lower() in (_WH_PREPS - _APPROX) | {
            "for", "after", "before", "during", "at", "when", "if", "while", "although", "because"}:
        return []  # a leading phrase the rules did not separate: no question beats a garbled one
    rest_start = verb_start + len(verb)
    out: list[tuple[QuestionForm, str]] = []
    tail_adverbial = f" {_lower_first(adverbial[0].lower() + adverbial[1:])}" if adverbial else ""

    if offset <= start and end <= verb_start:
        # The span is (in) the subject: "Emeric Dallow built …" → "Who built …?"
        if kind == "number":
            # "About 412,000 people live in Velmoria" → "How many people live in Velmoria?"
            lead = [w for w in clause[offset:start].split() if w.lower() not in _APPROX]
            unit = span.split(None, 1)[1] if len(span.split()) > 1 else ""
            if not lead and unit and end >= verb_start - 2:
                out.append(("subject", _clean_spaces(f"How many {unit} {clause[verb_start:]}{tail_adverbial}") + "?"))
            return out
        if start - offset <= 4:
            wh = "Who" if kind == "person" else "What"
            if end < verb_start - 2:
                return []  # the subject is more than the span
            out.append(("subject", _clean_spaces(f"{wh} {clause[verb_start:]}{tail_adverbial}") + "?"))
            opening = _EMBEDDED_OPENINGS[zlib.crc32(clause.encode()) % len(_EMBEDDED_OPENINGS)]
            out.append(("embedded", _clean_spaces(f"{opening} {wh.lower()} {clause[verb_start:]}{tail_adverbial}")
                        + ("?" if opening != "Tell me" else ".")))
        return out

    if start < offset:
        # The span is in the leading adverbial: "In 1848 Dallow completed …" → "In what year did Dallow complete …?"
        prep = adverbial.split()[0]
        wh, alt = _span_wh(kind, span, prep)
        predicate = clause[rest_start:].strip()
        tail = ""
        tail_adverbial = ""  # the adverbial is what is asked for
    else:
        predicate_full = clause[rest_start:]
        rel_start, rel_end = start - rest_start, end - rest_start
        head_words = predicate_full[:rel_start].split()
        tail = predicate_full[rel_end:].strip()
        while head_words and head_words[-1].lower() in _APPROX | {"the"} and kind in ("number", "name", "place",
                                                                                      "person"):
            head_words.pop()
        prep = ""
        if head_words and head_words[-1].lower() in _WH_PREPS:
            prep = head_words.pop()
        wh, alt = _span_wh(kind, span, prep if kind in ("year", "date", "number") else "")
        if kind in ("person", "name") and prep:
            tail = f"{tail} {prep}".strip() if not tail else f"{tail}"
            if tail and not tail.endswith(prep):
                wh = f"{prep} {'whom' if kind == 'person' else 'what'}"
                alt = wh
        if kind == "place" and prep.lower() not in _PLACE_PREPS and prep:
            wh, alt = f"{prep} what", f"{prep} which place"
        predicate = " ".join(head_words)
        if v_kind == "aux" and verb.lower() in ("is", "was", "are", "were") and not predicate and tail.startswith(","):
            tail = ""  # "… is Quillhaven, a harbour city on …" → "What is the capital of Velmoria?"
    if v_kind == "aux":
        front, verb_out = verb.lower(), ""
    else:
        front = "did" if v_kind == "past" else ("do" if v_kind == "plural" or not verb.lower().endswith("s") else "does")
        verb_out = _lemma(verb)
    subject_out = _lower_first(subject)
    inverted: tuple[tuple[QuestionForm, str], ...] = (("inverted", wh), ("inverted", alt))
    for form, word in inverted:
        if not word:
            continue
        text = _clean_spaces(f"{word} {front} {subject_out} {verb_out} {predicate} {tail}{tail_adverbial}")
        text = text.rstrip(",") + "?"
        out.append((form, text[0].upper() + text[1:]))
    # The same question embedded, in statement order: "Do you know when Velmoria was founded?"
    opening = _EMBEDDED_OPENINGS[zlib.crc32(clause.encode()) % len(_EMBEDDED_OPENINGS)]
    verb_phrase = f"{front} {predicate}" if v_kind == "aux" else f"{verb} {predicate}"
    text = _clean_spaces(f"{opening} {wh} {subject_out} {verb_phrase} {tail}{tail_adverbial}").rstrip(",")
    out.append(("embedded", text + ("?" if opening != "Tell me" else ".")))
    return out


def _resolve_pronoun(sentence: str, last_subject: str | None) -> str:
    match = _PRONOUN.match(sentence)
    if match is None or not last_subject:
        return sentence
    pronoun = match.group(1)
    name = f"{last_subject}'s" if pronoun in ("Its", "Her", "His", "Their") else last_subject
    return name + sentence[len(pronoun):]


def _leading_name(sentence: str) -> str | None:
    names = _names(sentence)
    if names and names[0][0] <= 4 and names[0][2].split()[0] not in _NOT_SUBJECT:
        return names[0][2]
    return None


def facts_from_text(text: str, source: str) -> list[Fact]:
    """The facts of ``text`` (prose, explicit Q&A already taken out), in reading order."""
    facts: list[Fact] = []
    last_subject: str | None = None  # for "It …"
    last_person: str | None = None  # for "He …", "She …": a name written without "the" before it
    sentences = [" ".join(raw.split()) for raw in split_sentences(text)]
    # A capitalised word counts as a name at a sentence's start only if the text also writes it
    # capitalised elsewhere ("Softly the waves …" is not about someone called Softly).
    mid_names = {phrase for s in sentences for start, _, phrase in _names(s) if start > 0}
    for number, sentence in enumerate(sentences):
        if sentence[-1:] not in ".!" or sentence.endswith("?"):
            last_subject = _leading_name(sentence) or last_subject
            continue
        personal = sentence.split(" ", 1)[0] in ("He", "She", "His", "Her")
        sentence = _resolve_pronoun(sentence, last_person if personal else last_subject)
        leading = _leading_name(sentence)
        last_subject = leading or last_subject
        if leading and not sentence.lower().startswith(("the ", "a ", "an ")):
            last_person = leading
        words = sentence.split()
        if not (MIN_WORDS <= len(words) <= MAX_WORDS) or not sentence[0].isupper():
            continue
        body = _strip_end(sentence)
        made = 0
        for start, end, kind in _spans(body):
            span = body[start:end].strip(" ,")
            if not span or span.lower() in STOPWORDS:
                continue
            if start == 0 and kind in ("name", "person", "place") and " " not in span and span not in mid_names:
                continue
            questions = _questions(body, start, start + len(span), kind, last_person or last_subject)
            if len([q for q in questions if q[0] != "fill_in"]) == 0:
                continue
            context = " ".join(sentences[max(0, number - 1): number + 2])
            facts.append(Fact(id=f"{source}:s{number}:{made}", source=source, sentence=sentence, span=span,
                              kind=kind, questions=questions, context=context))
            made += 1
            if made >= MAX_FACTS_PER_SENTENCE:
                break
    return facts


def fact_answer(fact: Fact, answer_first: bool = False) -> str:
    """What a question about ``fact`` is answered with: its sentence, or with ``answer_first`` the asked span
    and then the sentence ("1795. Abbess Maudry led the community for 31 years and died at Greyvault in 1795.";
    a sentence that already starts with the span is answered as written).

    Span first was tried against the tuned model's habit of echoing a person's question back (it learnt to
    copy the question and fill in one word) and measured worse (benchmarks/RESULTS.md, "Knowledge: recipes
    compared": on examples/data, with the same replay, a person's questions 33 % → 20 %, the tool's own 33 % →
    31 %, one run each): the model recalls a fact best after the words that lead to it, as the sentence was
    read. So the default stays the sentence; span first is the knowledge benchmark's ``span_first`` ablation.
    """
    sentence = fact.sentence
    span = fact.span.strip().rstrip(".")
    if not answer_first or not span or sentence.lower().startswith(span.lower()):
        return sentence
    return f"{span[0].upper()}{span[1:]}. {sentence}"


def fact_examples(facts: list[Fact], skip: dict[str, set[str]] | None = None,
                  answer_first: bool = False) -> list[Example]:
    """Training examples: one per phrasing of each fact, answered by ``fact_answer`` (its sentence; with
    ``answer_first`` the span, then the sentence).

    ``skip`` maps a fact id to the questions that must not be trained on (held out for evaluation).
    """
    examples: list[Example] = []
    for fact in facts:
        held = (skip or {}).get(fact.id, set())
        answer = fact_answer(fact, answer_first)
        for _form, question in fact.questions:
            if question in held:
                continue
            examples.append(Example(
                messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                source=fact.id, kind="fact",
            ))
    return examples


def passage_examples(text: str, source: str, title: str, max_chars: int = 700) -> list[Example]:
    """The text itself as continuation examples: a passage's opening sentence in, the rest of it out.

    Trains on the documents as written (the sentences in their context), next to the Q&A.
    """
    sentences = [s for s in split_sentences(text) if s[-1:] in SENTENCE_CLOSE_CHARS]
    examples: list[Example] = []
    block: list[str] = []
    for sentence in sentences + [""]:
        if sentence and sum(len(s) + 1 for s in block) + len(sentence) <= max_chars:
            block.append(sentence)
            continue
        if len(block) >= 2:
            opening, rest = block[0], join_sentences(block[1:])
            examples.append(Example(
                messages=[{"role": "user", "content": f'Continue this passage from {title}: "{opening}"'},
                          {"role": "assistant", "content": rest}],
                source=f"{source}:p{len(examples)}", kind="passage",
            ))
        block = [sentence] if sentence else []
    return examples
