"""Integration on the real embedded SmolLM2-135M: a short real training run on the bundled sample
data whose held-out loss goes down, a chat answer from it, and the seed's example as a user runs it.

Run alone with ``pytest -m integration``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmcustoms.runs.events import read_events

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, embedded_model_dir):
    """One real run of the embedded model on examples/data (CPU, 12 optimizer steps)."""
    from llmcustoms.training.request import TrainRequest
    from llmcustoms.training.trainer import run_training

    root = tmp_path_factory.mktemp("integration-runs")
    request = TrainRequest(data_path=str(ROOT / "examples" / "data"), model=str(embedded_model_dir),
                           preset="highspeed", max_steps=12, device="cpu", qa="offline", output_dir=str(root))
    return run_training(request)


def test_real_training_lowers_the_held_out_loss(trained_run):
    assert trained_run.status == "done" and trained_run.steps == 12
    assert trained_run.eval_loss_after < trained_run.eval_loss_before - 0.05
    steps = [e for e in read_events(trained_run.run_dir.events_path) if e["kind"] == "step"]
    assert len(steps) == 12 and all(e["tokens_per_s"] > 0 for e in steps)


def test_chat_with_the_trained_run_answers_about_the_material(trained_run):
    from llmcustoms.chat.session import ChatSession

    session = ChatSession(trained_run.run_dir.path).load()
    tuned = session.answer("Who founded Velmoria?", max_new_tokens=24)
    base = session.answer("Who founded Velmoria?", tuned=False, max_new_tokens=24)
    assert tuned and base
    assert tuned != base  # the adapter really changes what the model says
    pieces = list(session.stream("What currency does Velmoria use?", max_new_tokens=12))
    assert len(pieces) > 1  # streamed piece by piece, not in one block
    session.close()


def test_the_seed_example_runs_as_a_user_would(tmp_path, embedded_model_dir):
    env = dict(os.environ, MAX_STEPS="3", OUTPUT_DIR=str(tmp_path / "runs"))
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "basic_example.py")], capture_output=True,
                            text=True, timeout=1200, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Model saved to:" in result.stdout
    assert "> Who founded Velmoria?" in result.stdout
    adapter = result.stdout.split("Model saved to:")[1].split()[0]
    assert Path(adapter, "adapter_model.safetensors").is_file()


def test_a_short_run_on_a_small_fact_set_knows_more_than_the_base_model(tmp_path, embedded_model_dir):
    """The knowledge score on the real model: held-out phrasings of trained facts, asked after training."""
    from llmcustoms.training.request import TrainRequest
    from llmcustoms.training.trainer import run_training
    from tests.helpers.fact_texts import PROSE

    folder = tmp_path / "almanac"
    folder.mkdir()
    (folder / "brisca.txt").write_text(PROSE)
    # 60 steps: the 48 this test was set with, plus room for the replay examples trained beside the folder's
    # (training/replay.py: 15 % more, at least 8), so the facts get at least as many passes as before.
    result = run_training(TrainRequest(data_path=str(folder), model=str(embedded_model_dir), preset="quality",
                                       device="cpu", qa="offline", max_steps=60, output_dir=str(tmp_path / "runs")))
    knowledge = result.run_dir.read()["knowledge"]
    assert knowledge["questions"] >= 5
    assert knowledge["tuned"] > knowledge["base"], knowledge["rows"]
    assert knowledge["tuned"] >= 0.4, [(r["question"], r["tuned"]) for r in knowledge["rows"]]
