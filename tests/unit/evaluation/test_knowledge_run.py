"""The knowledge score inside a real run (tiny random Llama): stored, evented, split honestly; the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcustoms.planning.budget import plan_budget
from llmcustoms.runs.events import read_events
from llmcustoms.training.request import TrainRequest
from llmcustoms.training.trainer import run_training
from tests.helpers.fact_texts import PROSE


@pytest.fixture
def fact_folder(tmp_path) -> Path:
    folder = tmp_path / "almanac"
    folder.mkdir()
    (folder / "brisca.txt").write_text(PROSE)
    return folder


def test_a_run_stores_the_knowledge_score_and_never_trains_on_the_asked_phrasing(fact_folder, tiny_model_dir,
                                                                                  tmp_path):
    result = run_training(TrainRequest(data_path=str(fact_folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=3, output_dir=str(tmp_path / "runs")))
    data = result.run_dir.read()
    knowledge = data["knowledge"]
    assert knowledge["questions"] == len(data["knowledge_probes"]) >= 5
    for key in ("base", "tuned", "open_book"):
        assert 0.0 <= knowledge[key] <= 1.0
    assert len(knowledge["rows"]) == knowledge["questions"]
    assert {"question", "span", "base", "tuned", "open_book", "tuned_correct"} <= set(knowledge["rows"][0])
    events = read_events(result.run_dir.events_path)
    scored = [e for e in events if e["kind"] == "knowledge"]
    assert scored and scored[-1]["tuned"] == knowledge["tuned"]
    done = [e for e in events if e["kind"] == "done"][-1]
    assert done["knowledge"]["questions"] == knowledge["questions"] and "held-out facts" in done["message"]


def test_a_text_without_facts_trains_and_says_too_few_facts(tmp_path, tiny_model_dir):
    folder = tmp_path / "poems"
    folder.mkdir()
    (folder / "poem.txt").write_text("\n\n".join(
        "Softly the grey waves fold into the evening light. Nothing at all is said, only the wind moves over the "
        "water and the stones." for _ in range(12)))
    result = run_training(TrainRequest(data_path=str(folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=1, output_dir=str(tmp_path / "runs")))
    assert result.status == "done"
    knowledge = result.run_dir.read()["knowledge"]
    assert knowledge["tuned"] is None and "Too few facts to test" in knowledge["message"]


def test_cpu_steps_come_from_the_data_and_a_measured_step(fact_folder, tiny_model_dir, tmp_path):
    result = run_training(TrainRequest(data_path=str(fact_folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", output_dir=str(tmp_path / "runs")))
    data = result.run_dir.read()
    budget = data["budget"]
    assert budget["seconds_per_step"] > 0 and "passes over" in budget["message"]
    rows = data["train_rows"]
    per_epoch = -(-rows // 4)  # batch 2 × accumulation 2 on the CPU
    assert budget["steps"] == data["config"]["max_steps"]
    # Not the old fixed 30: the preset's passes over this folder's rows (early stopping may end sooner).
    assert budget["steps"] == 3 * per_epoch or budget["capped_by_time"]
    assert result.steps <= budget["steps"]
    infos = [e["message"] for e in read_events(result.run_dir.events_path) if e["kind"] == "info"]
    assert any(m.startswith("Training budget:") for m in infos)


def test_budget_is_capped_by_measured_time():
    free = plan_budget(rows=400, rows_per_step=4, epochs=6, seconds_per_step=1.0, max_minutes=60)
    assert free.steps == 600 and not free.capped_by_time
    capped = plan_budget(rows=400, rows_per_step=4, epochs=6, seconds_per_step=3.0, max_minutes=10)
    assert capped.steps == 200 and capped.capped_by_time and "capped at 10 min" in capped.message
    assert abs(capped.epochs - 2.0) < 1e-9


def test_eval_cli_recomputes_the_score_from_the_run_folder(fact_folder, tiny_model_dir, tmp_path, capsys):
    from llmcustoms.cli import main

    result = run_training(TrainRequest(data_path=str(fact_folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=2, output_dir=str(tmp_path / "runs")))
    capsys.readouterr()
    assert main(["eval", str(result.run_dir.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"base", "tuned", "open_book", "questions", "rows"} <= set(report)
    stored = result.run_dir.read()["knowledge"]
    assert report["questions"] == stored["questions"]
    # Greedy answers from a fresh plain load are the ones the run scored.
    assert [r["tuned"] for r in report["rows"]] == [r["tuned"] for r in stored["rows"]]
    assert main(["eval", str(result.run_dir.path)]) == 0
    assert "tuned model, closed book" in capsys.readouterr().out


def test_eval_of_a_run_without_questions_is_one_sentence(tmp_path, capsys):
    from llmcustoms.cli import main
    from llmcustoms.runs.rundir import RunDir

    run = RunDir.create("tiny", root=str(tmp_path / "runs"), status="done")
    assert main(["eval", str(run.path)]) != 0
    err = capsys.readouterr().err
    assert "no held-out questions" in err and "Traceback" not in err
