"""Fact-level questions from hand-written sentences, and the split that keeps held-out phrasings out of training."""

from __future__ import annotations

import re

import pytest

from llmcustoms.data.facts import fact_answer, fact_examples, facts_from_text
from llmcustoms.evaluation.split import FAMILIES, short_question, split_facts, training_examples

TEXT = """Harbour notes

Velmoria was founded in 1742 by Admiral Teodora Vask. The capital of Velmoria is Quillhaven, a harbour city.
In 1848 Emeric Dallow completed the first Tide Engine at Saltmarsh Point. About 412,000 people live in Velmoria.
Founding Day falls on 9 March. The River Tamsk flows from the slopes of Mount Orrin. She ruled until 1771.
"""


def _facts():
    return facts_from_text(TEXT, "notes.txt")


def _questions(span: str) -> list[str]:
    return [q for f in _facts() if f.span == span for _, q in f.questions]


@pytest.mark.parametrize(("span", "expected"), [
    ("1742", "When was Velmoria founded by Admiral Teodora Vask?"),  # a year, auxiliary moved to the front
    ("Admiral Teodora Vask", "Who was Velmoria founded in 1742 by?"),  # a person, preposition kept at the end
    ("Quillhaven", "What is the capital of Velmoria?"),  # a name after "is", the appositive dropped
    ("1848", "In what year did Emeric Dallow complete the first Tide Engine at Saltmarsh Point?"),  # do-support
    ("412,000 people", "How many people live in Velmoria?"),  # a number and what it counts
    ("9 March", "On what date does Founding Day fall?"),  # a date
])
def test_each_fact_type_gets_a_natural_question(span, expected):
    assert expected in _questions(span)


def test_every_fact_is_asked_several_ways_including_a_fill_in():
    facts = _facts()
    assert len(facts) >= 8
    for fact in facts:
        forms = [form for form, _ in fact.questions]
        assert len(fact.questions) >= 2, fact
        assert "fill_in" in forms
        fill = dict(fact.questions)["fill_in"]
        assert "_____" in fill and fact.span not in fill.replace("Fill in the blank:", "").split("_____")[0][-3:]


def test_questions_stand_on_their_own_and_answers_are_whole_sentences():
    for fact in _facts():
        for _, question in fact.questions:
            assert not re.search(r"\b(the|this) (text|passage|document)\b", question, re.IGNORECASE), question
            assert question[0].isupper()
        assert fact.sentence[0].isupper() and fact.sentence.endswith((".", "!")), fact.sentence
        assert fact.span in fact.sentence


def test_leading_pronoun_is_replaced_by_the_name_it_stands_for():
    ruled = [f for f in _facts() if f.span == "1771"]
    assert ruled and ruled[0].sentence.startswith("Emeric Dallow") is False
    assert not ruled[0].sentence.startswith("She ")


def test_text_without_facts_gives_none():
    poem = "Softly the grey waves\nfold into evening light\nand nothing is said\n\nwind, salt, stone, rope, gull"
    assert facts_from_text(poem, "poem.txt") == []


def test_split_by_fact_keeps_each_held_out_phrasing_out_of_training():
    facts = _facts()
    split = split_facts(facts, seed=3, share=0.5)
    examples = fact_examples(facts)
    kept = training_examples(examples, facts, split)
    trained = {e.prompt for e in kept}
    assert split.probes
    for probe in split.probes:
        assert probe.question not in trained
        sentence_trained = any(_answers_with(e.answer, probe.reference) for e in kept)
        assert sentence_trained == (probe.trained_phrasings > 0)
    # Everything not held out is still trained on.
    held = {q for questions in split.held_questions.values() for q in questions}
    unseen = {p.reference for p in split.probes if p.trained_phrasings == 0}
    assert {e.prompt for e in examples
            if e.prompt not in held and not any(_answers_with(e.answer, u) for u in unseen)} == trained


def _answers_with(answer: str, sentence: str) -> bool:
    """The answer is the sentence, or a span and then the sentence (facts.fact_answer)."""
    return answer == sentence or answer.endswith(" " + sentence)


def test_a_fact_is_answered_by_its_sentence_or_span_first_when_asked():
    facts = _facts()
    by_span = {f.span: f for f in facts}
    dated = by_span["1771"]
    assert fact_answer(dated) == dated.sentence
    assert fact_answer(dated, answer_first=True) == f"1771. {dated.sentence}"
    assert all(e.answer == next(f.sentence for f in facts if f.id == e.source) for e in fact_examples(facts))
    for example in fact_examples(facts, answer_first=True):
        fact = next(f for f in facts if f.id == example.source)
        assert example.answer == fact_answer(fact, answer_first=True)
        assert example.answer.endswith(fact.sentence)
        # Span first: the answer starts with the span (a sentence that starts with it is not doubled).
        assert example.answer.lower().startswith(fact.span.lower().rstrip("."))
        assert not example.answer.lower().startswith(2 * fact.span.lower())


def test_the_asked_questions_whole_family_is_kept_out_of_training_and_it_is_asked_short():
    """A near-copy of the asked question (its other question word, its embedded form) is never trained on."""
    facts = _facts()
    split = split_facts(facts, seed=3, share=0.5)
    trained = {e.prompt for e in training_examples(fact_examples(facts), facts, split)}
    by_id = {f.id: f for f in facts}
    families_seen = set()
    for probe in split.probes:
        fact = by_id[probe.fact_id]
        families_seen.add(probe.family)
        same_family = [q for form, q in fact.questions if form in FAMILIES[probe.family]]
        assert same_family and not set(same_family) & trained
        others = [q for form, q in fact.questions if form not in FAMILIES[probe.family]]
        if probe.trained_phrasings:
            assert set(others) <= trained and probe.trained_phrasings == len(others)
    assert "inverted" in families_seen


def test_short_question_cuts_a_trailing_apposition_but_never_the_question_word():
    assert short_question("When was the cloister founded by Abbess Maudry, a lens maker of Fallowgate?") == \
        "When was the cloister founded by Abbess Maudry?"
    assert short_question("Since what date does the cloister keep the Snow Ledger, a record of snowfall?") == \
        "Since what date does the cloister keep the Snow Ledger?"
    # The question word comes after the comma: nothing is cut before it.
    assert short_question("Above the glacier stands Mount Skathe, at how many metres?") == \
        "Above the glacier stands Mount Skathe, at how many metres?"
    assert short_question("Who built it?") == "Who built it?"


def test_split_is_deterministic_and_too_few_facts_is_said():
    facts = _facts()
    assert [p.question for p in split_facts(facts, seed=1).probes] == [p.question for p in split_facts(facts, seed=1).probes]
    few = split_facts(facts[:2])
    assert not few.enough and "Too few facts to test" in few.summary()


def test_a_large_folder_samples_a_bounded_number_of_facts_and_says_so():
    text = " ".join(f"Tower {n} of Brisca was built in {1500 + n} by Mira Holt." for n in range(400))
    facts = facts_from_text(text, "towers.txt")
    split = split_facts(facts, max_probes=20)
    assert len(split.probes) == 20 and split.sampled
    assert "a sample of 20 is asked" in split.summary()
    assert not set(p.fact_id for p in split.probes) & set(p.fact_id for p in split.dev_probes)
