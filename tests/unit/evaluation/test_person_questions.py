"""A person's questions beside the tool's own score: the file read, asked of a real run, stored, compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcustoms.errors import InputError
from llmcustoms.evaluation.knowledge import KnowledgeReport
from llmcustoms.evaluation.person_questions import (
    PersonQuestion,
    compared,
    load_questions,
    right,
    source_passage,
)
from llmcustoms.evaluation.scoring import is_correct
from llmcustoms.training.request import TrainRequest
from llmcustoms.training.trainer import run_training
from tests.helpers.fact_texts import PROSE


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_both_layouts_are_read_and_a_bad_line_is_named(tmp_path):
    good = _write(tmp_path / "q.jsonl", [{"q": "Who founded Brisca?", "a": ["Noor Lethe", "Lethe"]}, "",
                                         {"question": "How high is Mount Farrow?", "key": "1,912",
                                          "source": "brisca.txt"}])
    questions = load_questions(good)
    assert questions == [PersonQuestion("Who founded Brisca?", ("Noor Lethe", "Lethe")),
                         PersonQuestion("How high is Mount Farrow?", ("1,912",), "brisca.txt")]
    bad = _write(tmp_path / "bad.jsonl", [{"q": "Who?", "a": ["x"]}, "{not json", ])
    with pytest.raises(InputError, match=r"bad.jsonl, line 2: not JSON"):
        load_questions(bad)
    no_answer = _write(tmp_path / "none.jsonl", [{"q": "Who founded Brisca?", "a": []}])
    with pytest.raises(InputError, match=r"line 1: no answer"):
        load_questions(no_answer)
    with pytest.raises(InputError, match="No question file at"):
        load_questions(tmp_path / "missing.jsonl")


def test_any_listed_answer_counts_and_the_open_book_passage_holds_the_answer(tmp_path):
    question = PersonQuestion("Who founded Brisca?", ("Noor Lethe", "the admiral"), "brisca.txt")
    assert right("It was the admiral, long ago.", question)
    assert not right("It was Ida Venn.", question)
    (tmp_path / "brisca.txt").write_text("x " * 3000 + "Brisca was founded by Noor Lethe. " + "y " * 3000)
    passage = source_passage(question, tmp_path)
    assert passage is not None and "Noor Lethe" in passage and len(passage) <= 3000
    assert source_passage(PersonQuestion("?", ("a",)), tmp_path) is None  # no source: no open book


def test_the_comparison_says_which_way_the_tool_is_off():
    def report(tuned: float) -> KnowledgeReport:
        return KnowledgeReport(questions=20, base=0.0, tuned=tuned, open_book=0.5)

    assert "reads 33 points higher" in compared(report(0.73), report(0.40))
    assert "within 5 points" in compared(report(0.45), report(0.40))
    assert "get 20 points more" in compared(report(0.40), report(0.60))


def test_eval_asks_your_questions_beside_its_own_and_stores_both(tmp_path, tiny_model_dir, capsys):
    from llmcustoms.cli import main

    folder = tmp_path / "almanac"
    folder.mkdir()
    (folder / "brisca.txt").write_text(PROSE)
    result = run_training(TrainRequest(data_path=str(folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=2, output_dir=str(tmp_path / "runs")))
    # Training measured what the model kept of its general knowledge too.
    general = result.run_dir.read()["general"]
    assert general["questions"] >= 100 and general["base_perplexity"] > 0
    questions = _write(tmp_path / "mine.jsonl", [
        {"q": "Who founded Brisca?", "a": ["Noor Lethe"], "source": "brisca.txt"},
        {"q": "How high is Mount Farrow?", "a": ["1,912"]}])
    capsys.readouterr()
    assert main(["eval", str(result.run_dir.path), "--questions", str(questions), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    person = report["person_questions"]
    assert person["questions"] == 2 and person["file"] == str(questions)
    for row, keys in zip(person["rows"], (["Noor Lethe"], ["1,912"]), strict=True):
        assert row["tuned_correct"] == any(is_correct(row["tuned"], k) for k in keys)
    assert "open_book" in person["rows"][0] and "open_book" not in person["rows"][1]  # only with a source file
    assert person["gap"] == pytest.approx(round(report["tuned"] - person["tuned"], 3))
    assert 0.0 <= (report["general_kept"] if report["general_kept"] is not None else 0.0) <= 1.0
    assert isinstance(report["general_perplexity_change"], float)
    stored = result.run_dir.read()
    assert stored["person_questions"]["questions"] == 2 and stored["general"]["questions"] == general["questions"]
    assert main(["eval", str(result.run_dir.path), "--questions", str(questions), "--no-general", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "Your 2 questions" in out and "tool's own" in out and "Kept" not in out
    # --verbose lists your questions too, each with the passage (or none) behind the tuned answer.
    assert "✓ How high is Mount Farrow?" in out or "✗ How high is Mount Farrow?" in out
    assert out.count("support:") == stored["knowledge"]["questions"] + 2


def test_a_bad_question_file_is_refused_before_the_model_loads(tmp_path, capsys):
    from llmcustoms.cli import main
    from llmcustoms.runs.rundir import RunDir

    run = RunDir.create("tiny", root=str(tmp_path / "runs"), status="done")
    run.update(knowledge_probes=[{"fact_id": "f", "question": "Who?", "reference": "X.", "span": "X",
                                  "context": "X.", "trained_phrasings": 1}])
    bad = _write(tmp_path / "bad.jsonl", ["[1, 2]"])
    code = main(["eval", str(run.path), "--questions", str(bad)])
    captured = capsys.readouterr()
    assert code == 2 and "line 1" in captured.err and "Loading" not in captured.err
