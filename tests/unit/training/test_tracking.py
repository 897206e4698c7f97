"""Experiment tracking (issue 26, part 1): TensorBoard event files in the run folder, read back with
TensorBoard's own reader; a tracker named but not installed is one sentence before any model loads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llmcustoms.errors import ConfigError
from llmcustoms.training import tracking
from llmcustoms.training.request import TrainRequest
from llmcustoms.training.trainer import run_training
from llmcustoms.utils.config import Settings
from tests.helpers.runs_support import fast_request, make_small_folder

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                reason="tensorboard is a dependency; this environment lacks it")


@pytest.fixture(autouse=True)
def _no_general_check(monkeypatch):
    """The general-knowledge check at a run's end (~30 s of 177 questions on 2 cores) is not under test here."""
    from llmcustoms.evaluation.general import GeneralReport
    from llmcustoms.training import knowledge_check

    monkeypatch.setattr(knowledge_check, "score_general", lambda model, tokenizer: GeneralReport.from_dict({}))


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events_file in sorted(folder.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events_file))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_a_run_writes_tensorboard_events_holding_the_loss(tmp_path, tiny_model_dir, monkeypatch, capsys):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # nothing may land in the working folder (./runs: transformers' fallback)
    request = fast_request(make_small_folder(tmp_path), tiny_model_dir, max_steps=3)
    request.output_dir = str(tmp_path / "runs")
    result = run_training(request)
    run = result.run_dir
    assert run.read()["request"]["report_to"] == "tensorboard"  # the default, recorded for a resume
    folder = tracking.tensorboard_dir(run.path)
    scalars = _scalars(folder)
    losses = scalars["train/loss"]
    assert [step for step, _ in losses] == [1, 2, 3]
    assert all(value > 0 for _, value in losses)
    assert "train/learning_rate" in scalars and "eval/loss" in scalars
    assert [step for step, _ in scalars["train/perf/tokens_per_s"]] == [1, 2, 3]  # our measures, each step
    assert all(value > 0 for _, value in scalars["train/perf/ram_used_mb"])
    knowledge = run.read()["knowledge"]  # the score at the end, at the last step
    assert scalars["knowledge/tuned"] == [(3, pytest.approx(knowledge["tuned"]))]
    assert scalars["knowledge/base"] == [(3, pytest.approx(knowledge["base"]))]
    # the held-out loss after training, as the run recorded it
    assert scalars["eval/loss"][-1][1] == pytest.approx(result.eval_loss_after, rel=1e-5)
    assert not any((tmp_path / "cwd").iterdir())
    assert not (run.checkpoints_dir / "runs").exists()  # transformers' default under output_dir
    from llmcustoms.cli import main

    capsys.readouterr()
    assert main(["runs", "--output-dir", str(tmp_path / "runs")]) == 0
    assert f"tensorboard --logdir {tmp_path / 'runs'}" in capsys.readouterr().out


def test_none_writes_no_event_files(tmp_path, tiny_model_dir):
    request = fast_request(make_small_folder(tmp_path), tiny_model_dir, max_steps=1)
    request.output_dir, request.report_to = str(tmp_path / "runs"), "none"
    run = run_training(request).run_dir
    assert not tracking.tensorboard_dir(run.path).exists()
    assert not any(run.path.rglob("events.out.tfevents.*"))


def test_a_named_tracker_not_installed_is_one_sentence_before_any_run(tmp_path, tiny_model_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    request = TrainRequest(data_path=str(make_small_folder(tmp_path)), model=str(tiny_model_dir),
                           device="cpu", qa="offline", max_steps=1, output_dir=str(tmp_path / "runs"),
                           report_to="wandb")
    with pytest.raises(ConfigError, match=r"needs the wandb package.*pip install wandb.*--report-to none"):
        run_training(request)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_default_and_settings(monkeypatch, tmp_path):
    assert tracking.resolve_report_to(None) == "tensorboard"
    assert tracking.resolve_report_to("NONE") == "none"
    monkeypatch.setenv("REPORT_TO", "mlflow")
    assert Settings.load(cwd=tmp_path).report_to == "mlflow"
    monkeypatch.setenv("REPORT_TO", "comet")
    with pytest.raises(ConfigError, match="REPORT_TO must be one of"):
        Settings.load(cwd=tmp_path)
    monkeypatch.setattr(tracking, "tracker_installed", lambda name: name == "none")
    assert tracking.resolve_report_to(None) == "none"  # no tensorboard package: no tracker, no error


def test_wandb_and_mlflow_say_where_the_data_goes(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert "Weights & Biases" in tracking.where_data_goes("wandb", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert "http://mlflow.example:5000" in tracking.where_data_goes("mlflow", tmp_path)
    assert str(tmp_path / "tensorboard") in tracking.where_data_goes("tensorboard", tmp_path)


def test_cli_names_the_tracker_sentence_and_the_tensorboard_command(tmp_path, capsys, monkeypatch):
    from llmcustoms.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    folder = make_small_folder(tmp_path)
    code = main(["train", str(folder), "--report-to", "mlflow", "--qa", "offline", "--output-dir",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "needs the mlflow package" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
