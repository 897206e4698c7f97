"""Which facts are held out for the knowledge score, and which phrasing of each is asked.

The split is by *fact*, not by example. For a held-out fact, the whole *family* of the phrasing that is
asked is kept out of training (the wh-question with its auxiliary fronted is one family with its other
question word, its embedded "Do you know when…" form and the question asked in place: they differ by a word
or two, or only in word order), and the
question asked is the short form a person types ("Since what date does the cloister keep the Snow
Ledger?"), cut before trailing appositions and clauses that copy the answer's sentence. What else was
made for the fact (the fill-in, and a subject question where the fronted one is asked) is trained on.

Why: when a near-copy of the asked question was trained on, the score measured recall of the
generator's own wording — 73 % on new documents where a person's questions got 40 % (issue 22). A
person asks about facts that were trained on, in words the generator never used; a held-out family
is the nearest the tool can come to that without a person. A few held-out facts (``UNSEEN_SHARE``)
get no training question at all: the model sees them only in the plain text, which shows how far
reading alone goes. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from llmcustoms.data.facts import Fact
from llmcustoms.data.types import Example

#: The share of facts held out for the score, and the cap (a large folder samples this many, and says so).
EVAL_SHARE = 0.25
MAX_PROBES = 200
MIN_FACTS = 5
#: Of the held-out facts, this share is trained on no question at all (only the text as written).
UNSEEN_SHARE = 0.1
#: Facts held out (one phrasing each) to choose the best checkpoint during training: never the scored ones.
DEV_PROBES = 16
#: The phrasing asked, by preference: the ones a person would write.
ASK_ORDER = ("inverted", "subject", "reversed", "in_place")
#: Phrasings that are one family: the same words, moved or one word swapped. Asking one of a family keeps
#: the whole family out of training (the embedded form is the fronted question in statement order).
#: The question asked in place ("Abbess Maudry was installed in what year?") is the fronted or the subject
#: question's words in another order, so it belongs to every family (the dataset report's leakage check
#: found it trained beside its held-out reordering in every benchmark folder).
FAMILIES: dict[str, frozenset[str]] = {
    "inverted": frozenset({"inverted", "embedded", "in_place"}),
    "subject": frozenset({"subject", "embedded", "in_place"}),
    "reversed": frozenset({"reversed", "in_place"}),
    "in_place": frozenset({"in_place", "inverted", "embedded", "subject"}),
}
# Where a person's question stops: before an apposition or a trailing clause that restates the sentence.
_WH_WORD = re.compile(r"\b(?:[Ww]hen|[Ww]hat|[Ww]ho|[Ww]hom|[Ww]here|[Ww]hich|[Hh]ow)\b")
_TRAILING = re.compile(r",\s|\s(?:because|which|whereas|while|although|until|so that)\s")


@dataclass
class Probe:
    """One held-out question: what is asked, what a right answer must contain, and where it came from."""

    fact_id: str
    question: str
    reference: str  # the fact's sentence
    span: str
    context: str  # the passage around the fact (for the open-book condition)
    trained_phrasings: int  # how many other phrasings of this fact were trained on (0: none)
    family: str = ""  # the question family asked (none of it was trained on for this fact)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class KnowledgeSplit:
    """The probes and what training must leave out for them."""

    probes: list[Probe] = field(default_factory=list)
    dev_probes: list[Probe] = field(default_factory=list)  # for checkpoint choice and early stopping only
    held_questions: dict[str, set[str]] = field(default_factory=dict)  # fact id → questions never trained on
    unseen_facts: set[str] = field(default_factory=set)  # fact ids with no training question at all
    total_facts: int = 0
    sampled: bool = False  # True when the folder had more facts than MAX_PROBES allows

    @property
    def enough(self) -> bool:
        """False when the text holds too few checkable facts for a score."""
        return len(self.probes) >= MIN_FACTS

    def summary(self) -> str:
        """One sentence on what is held out."""
        if not self.enough:
            return (f"Too few facts to test ({len(self.probes)} checkable; at least {MIN_FACTS} are needed): "
                    "training runs, without a knowledge score.")
        unseen = sum(1 for p in self.probes if p.trained_phrasings == 0)
        text = (f"Knowledge score: {len(self.probes)} of {self.total_facts} facts held out, each asked in a "
                f"wording never trained on ({unseen} of them with no training question at all).")
        if self.sampled:
            text += f" The folder has more facts than that: a sample of {len(self.probes)} is asked."
        return text


def short_question(question: str) -> str:
    """The question a person would type: cut before a trailing apposition or clause, when at least four
    words are left ("When was the cloister founded by Abbess Maudry, a lens maker?" → "When was the
    cloister founded by Abbess Maudry?")."""
    body = question.rstrip().rstrip("?.").rstrip()
    wh = _WH_WORD.search(body)
    if wh is None:
        return question
    cut = _TRAILING.search(body, wh.end())  # never before the question word ("Above X, at how many metres?")
    if cut is not None and len(body[: cut.start()].split()) >= 4:
        body = body[: cut.start()].rstrip(" ,;")
    return body + "?"


def split_facts(facts: list[Fact], seed: int = 42, share: float = EVAL_SHARE, max_probes: int = MAX_PROBES,
                unseen_share: float = UNSEEN_SHARE, dev: int = DEV_PROBES) -> KnowledgeSplit:
    """Choose held-out facts (at most one per sentence, so no training example answers a held-out question
    with the same sentence through another span) and the phrasing to ask for each."""
    askable = [f for f in facts if any(form in ASK_ORDER for form, _ in f.questions)]
    by_sentence: dict[str, Fact] = {}
    for fact in askable:
        by_sentence.setdefault(fact.sentence, fact)  # the sentence's first (most informative) span
    candidates = sorted(by_sentence.values(), key=lambda f: f.id)
    rng = random.Random(seed)
    rng.shuffle(candidates)
    wanted = min(max_probes, max(MIN_FACTS, round(len(askable) * share)))
    chosen = candidates[:wanted]
    # The dev facts come from what is left, and only when enough is left to train on.
    dev_count = min(dev, max(0, (len(candidates) - wanted) // 4))
    dev_facts = candidates[wanted: wanted + dev_count]
    n_unseen = int(len(chosen) * unseen_share)
    split = KnowledgeSplit(total_facts=len(facts), sampled=round(len(askable) * share) > max_probes)
    for index, fact in enumerate(chosen + dev_facts):
        form_rank = {form: i for i, form in enumerate(ASK_ORDER)}
        asked_form, asked = min(((f, q) for f, q in fact.questions if f in form_rank), key=lambda fq: form_rank[fq[0]])
        unseen = index < n_unseen
        family = FAMILIES[asked_form]
        held = {q for f, q in fact.questions if f in family} | {asked}
        question = short_question(asked)
        others = [q for f, q in fact.questions if q not in held]
        split.held_questions[fact.id] = held | {question}
        if unseen:
            split.unseen_facts.add(fact.id)
        probe = Probe(fact_id=fact.id, question=question, reference=fact.sentence, span=fact.key,
                      context=fact.context or fact.sentence, trained_phrasings=0 if unseen else len(others),
                      family=asked_form)
        (split.probes if index < len(chosen) else split.dev_probes).append(probe)
    # Other facts about the same sentence must not teach a held-out fact's answer through its held question.
    return split


def training_examples(examples: list[Example], facts: list[Fact], split: KnowledgeSplit) -> list[Example]:
    """``examples`` without what the held-out facts must not be trained on.

    Gone: each held-out question (whatever example asks it), and for a fact with no training question
    every question answered by its sentence. The plain-text passages stay: reading is allowed.
    """
    held = {q.casefold() for questions in split.held_questions.values() for q in questions}
    unseen_sentences = {f.sentence for f in facts if f.id in split.unseen_facts}

    def answers_unseen(answer: str) -> bool:
        # A fact's answer is its sentence, or the span and then the sentence (``facts.fact_answer``).
        return answer in unseen_sentences or any(answer.endswith(" " + s) for s in unseen_sentences)

    return [e for e in examples
            if e.prompt.casefold() not in held
            and not (e.kind != "passage" and answers_unseen(e.answer))]
