"""End-to-end training on the tiny random Llama: events, run files, adapter, stop, no overwrite."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from llmcustoms.errors import ConfigError, DataError
from llmcustoms.runs.events import ListSink, read_events
from llmcustoms.training.request import TrainRequest
from llmcustoms.training.trainer import run_training
from tests.helpers.runs_support import make_small_folder


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return make_small_folder(tmp_path)


def _request(folder: Path, model: Path, **kw) -> TrainRequest:
    return TrainRequest(data_path=str(folder), model=str(model), preset="highspeed", device="cpu", qa="offline", **kw)


def test_a_run_writes_events_run_json_and_an_adapter(small_folder, tiny_model_dir, tmp_path):
    sink = ListSink()
    seen_runs = []
    result = run_training(_request(small_folder, tiny_model_dir, max_steps=4, output_dir=str(tmp_path / "runs")),
                          sink=sink, on_run=seen_runs.append)
    run = result.run_dir
    assert seen_runs == [run]
    assert result.status == "done" and result.steps == 4
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (run.adapter_dir / "adapter_config.json").is_file()
    data = json.loads(run.run_json.read_text())
    assert data["status"] == "done" and data["adapter_path"] == str(run.adapter_dir)
    assert data["eval_loss_before"] == pytest.approx(result.eval_loss_before)
    assert data["eval_loss_after"] == pytest.approx(result.eval_loss_after)
    # highspeed's r=4, raised to 16 on a CPU so facts stick in few passes (presets.CPU_KNOWLEDGE_FLOORS)
    assert data["config"]["lora_rank"] == 16 and data["preset"] == "highspeed"
    assert data["example_prompts"], "held-out prompts are offered to the chat"
    events = read_events(run.events_path)
    assert events == sink.events  # the file and the live sink see the same stream
    kinds = [e["kind"] for e in events]
    assert kinds[0] in ("info", "start") and kinds[-1] == "done"
    steps = [e for e in events if e["kind"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert e["max_steps"] == 4 and e["loss"] > 0 and e["tokens_per_s"] > 0 and "eta_s" in e
        assert e["ram_used_mb"] > 0
    assert any(e["kind"] == "eval" for e in events)
    assert not any(Path(run.path).glob(".adapter.tmp-*"))


def test_stop_event_ends_the_run_gracefully_with_an_adapter(small_folder, tiny_model_dir):
    stop = threading.Event()
    sink = ListSink()

    def stop_after_two(event):
        sink(event)
        if event.get("kind") == "step" and event["step"] >= 2:
            stop.set()

    result = run_training(_request(small_folder, tiny_model_dir, max_steps=50), sink=stop_after_two, stop=stop)
    assert result.status == "stopped"
    assert 2 <= result.steps < 50
    assert (result.run_dir.adapter_dir / "adapter_model.safetensors").is_file()
    assert result.run_dir.read()["status"] == "stopped"


def test_a_second_run_never_overwrites_the_first(small_folder, tiny_model_dir):
    first = run_training(_request(small_folder, tiny_model_dir, max_steps=1))
    before = (first.run_dir.adapter_dir / "adapter_model.safetensors").read_bytes()
    second = run_training(_request(small_folder, tiny_model_dir, max_steps=1, seed=7))
    assert first.run_dir.path != second.run_dir.path
    assert (first.run_dir.adapter_dir / "adapter_model.safetensors").read_bytes() == before


def test_bad_folder_fails_before_any_run_is_created(tmp_path, tiny_model_dir):
    with pytest.raises(DataError, match="does not exist"):
        run_training(_request(tmp_path / "missing", tiny_model_dir, max_steps=1, output_dir=str(tmp_path / "r")))


def test_unknown_preset_is_a_config_error(small_folder, tiny_model_dir):
    with pytest.raises(ConfigError, match="Unknown preset"):
        run_training(TrainRequest(data_path=str(small_folder), model=str(tiny_model_dir), preset="turbo"))


def test_training_reduces_training_loss_on_repeated_data(small_folder, tiny_model_dir):
    result = run_training(_request(small_folder, tiny_model_dir, max_steps=12, extra={"learning_rate": 3e-3}))
    losses = [e["loss"] for e in read_events(result.run_dir.events_path) if e["kind"] == "step"]
    # A random model starts near ln(vocab) on every batch (~10.8) and measured 10.80 → 0.25 lower over these
    # 12 steps; 0.1 nats is far outside batch-to-batch noise, so a run whose updates do nothing fails here.
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
