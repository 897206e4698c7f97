"""The knowledge score's match rule on known answers."""

from __future__ import annotations

import pytest

from llmcustoms.evaluation.scoring import SPAN_RECALL_THRESHOLD, is_correct, normalise, span_recall


@pytest.mark.parametrize(("answer", "span", "right"), [
    ("Velmoria was founded in 1742.", "1742", True),
    ("It was founded in 1741.", "1742", False),
    ("About 412000 people live there.", "412,000 people", True),
    ("The wheel was 9 metres across.", "nine metres", True),
    ("It produced thirty six horsepower", "thirty-six horsepower", False),  # "thirty six" ≠ 36: stated limit
    ("It produced 36 horsepower.", "thirty-six horsepower", True),
    ("Teodora Vask founded it.", "Admiral Teodora Vask", True),  # 2 of 3 words ≥ threshold
    ("Vask founded it.", "Admiral Teodora Vask", False),
    ("THE CAPITAL IS QUILLHAVEN!", "Quillhaven", True),
    ("", "Quillhaven", False),
])
def test_known_answers(answer, span, right):
    assert is_correct(answer, span) is right


def test_only_the_opening_of_a_long_answer_counts():
    rambling = " ".join(["word"] * 100) + " Quillhaven"
    assert span_recall(rambling, "Quillhaven") == 0.0


def test_normalise_and_threshold():
    assert normalise("The 2,318 Metres of Mount Orrin's") == ["2318", "metres", "mount", "orrin"]
    assert 0 < SPAN_RECALL_THRESHOLD <= 1
    assert span_recall("anything", "") == 0.0
