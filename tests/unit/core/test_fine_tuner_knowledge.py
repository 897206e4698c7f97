"""FineTuner and the knowledge score: ``knowledge_score()`` reads run.json's score (or recomputes it), and
``test_model()`` asks the held-out questions by default and says the headline. No model is loaded: the chat
session and the evaluation are stand-ins; the run folders are written as the trainer leaves them."""

from __future__ import annotations

import pytest

from llmcustoms import FineTuner
from llmcustoms.errors import InputError
from tests.helpers.tui_fakes import (
    FEW_FACTS_KNOWLEDGE,
    SAMPLE_KNOWLEDGE,
    SAMPLE_PROBES,
    scripted_events,
    write_run,
)


class _FakeSession:
    """ChatSession's surface that test_model uses: knows the first held-out fact, nothing else."""

    def __init__(self, ref, *args, **kwargs) -> None:
        self.ref = str(ref)
        self.has_adapter = True
        self.example_prompts = ["What is the Tide Engine?"]
        self.asked: list[tuple[str, bool]] = []

    def load(self):
        return self

    def answer(self, prompt: str, tuned: bool = True) -> str:
        self.asked.append((prompt, tuned))
        return "Emeric Dallow built it in 1841." if tuned else "Nobody knows."

    def support(self, prompt: str, answer: str):
        """No documents behind this fake run: no passage to show (ChatSession.support's None)."""
        return None

    def close(self) -> None:
        pass


@pytest.fixture
def fake_chat(monkeypatch):
    import llmcustoms.core.fine_tuner as fine_tuner

    monkeypatch.setattr(fine_tuner, "ChatSession", _FakeSession)  # where FineTuner looks it up


def test_knowledge_score_reads_the_runs_score(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    tuner = FineTuner.from_run(str(run_dir))
    score = tuner.knowledge_score()
    assert score["questions"] == 30 and score["tuned"] == pytest.approx(22 / 30)
    assert score["base"] == pytest.approx(1 / 30) and score["open_book"] == pytest.approx(25 / 30)
    assert len(score["rows"]) == len(SAMPLE_PROBES)
    # By id, in a runs folder, as the CLI names runs.
    assert FineTuner.from_run(run_dir.name, output_dir=str(run_dir.parent)).knowledge_score() == score


def test_knowledge_score_of_a_run_with_too_few_facts_or_none(tmp_path):
    few = write_run(tmp_path / "runs", [], run_id="few", knowledge=FEW_FACTS_KNOWLEDGE)
    score = FineTuner.from_run(str(few)).knowledge_score()
    assert score["tuned"] is None and score["message"].startswith("Too few facts to test")
    old = write_run(tmp_path / "runs", [], run_id="old")
    score = FineTuner.from_run(str(old)).knowledge_score()
    assert score["questions"] == 0 and score["tuned"] is None and "no knowledge score" in score["message"]


def test_knowledge_score_needs_a_run(tmp_path):
    with pytest.raises(InputError, match="train"):
        FineTuner(str(tmp_path), progress=False).knowledge_score()


def test_knowledge_score_recomputes_through_evaluate_run(tmp_path, monkeypatch):
    import llmcustoms.evaluation.run_eval as run_eval
    from llmcustoms.evaluation.knowledge import KnowledgeReport

    run_dir = write_run(tmp_path / "runs", [], knowledge=SAMPLE_KNOWLEDGE, probes=SAMPLE_PROBES)
    asked = []

    def fake_evaluate(run_ref, output_dir=None, **kwargs):
        asked.append(run_ref)
        return KnowledgeReport(questions=30, base=0.0, tuned=0.9, open_book=0.8)

    monkeypatch.setattr(run_eval, "evaluate_run", fake_evaluate)
    score = FineTuner.from_run(str(run_dir)).knowledge_score(recompute=True)
    assert asked == [str(run_dir.resolve())] and score["tuned"] == 0.9 and score["questions"] == 30


def test_test_model_asks_the_held_out_questions_and_says_the_score(tmp_path, fake_chat, capsys):
    run_dir = write_run(tmp_path / "runs", [], knowledge=SAMPLE_KNOWLEDGE, probes=SAMPLE_PROBES)
    tuner = FineTuner.from_run(str(run_dir))
    answers = tuner.test_model(compare=True)
    assert [a["prompt"] for a in answers] == [p["question"] for p in SAMPLE_PROBES[:3]]
    assert answers.headline == "knows 22 of 30 held-out facts; the base model knew 1 (open book: 25)"
    assert answers.knowledge["questions"] == 30
    first = answers[0]
    assert first["reference"] == SAMPLE_PROBES[0]["reference"]
    assert first["correct"] is True and first["base_correct"] is False and first["base_answer"] == "Nobody knows."
    assert answers[1]["correct"] is False  # "autumn" is not in the fake's answer
    out = capsys.readouterr().out
    assert out.startswith("Knowledge score: knows 22 of 30 held-out facts")
    assert "the text says: The Tide Engine was built by Emeric Dallow in 1841. → right" in out


def test_test_model_keeps_its_old_behaviour_without_a_score(tmp_path, fake_chat, capsys):
    run_dir = write_run(tmp_path / "runs", [])  # a run from before the knowledge score
    tuner = FineTuner.from_run(str(run_dir))
    answers = tuner.test_model()
    assert answers == [{"prompt": "What is the Tide Engine?", "answer": "Emeric Dallow built it in 1841."}]
    assert answers.knowledge is None and answers.headline == ""
    answers = tuner.test_model(["Who built it?"])
    assert answers == [{"prompt": "Who built it?", "answer": "Emeric Dallow built it in 1841."}]
    assert "Knowledge score" not in capsys.readouterr().out
