"""Issue 29 item 7: the plan is the run's config, not the preset's. On a CPU the run widens the adapter, raises
the learning rate and takes its steps from the data; the plan (and so the plan screen's table) must say so, in
the same numbers ``training.choices.resolve_train_config`` gives the run."""

from __future__ import annotations

import pytest

from llmcustoms.core.planner import make_plan
from llmcustoms.planning.presets import CPU_KNOWLEDGE_FLOORS
from llmcustoms.training.choices import resolve_train_config
from llmcustoms.training.request import TrainRequest

CPU = {"device": "cpu", "gpus": [], "cpu_count": 2, "ram_total_mb": 16384, "ram_available_mb": 12000}


@pytest.mark.parametrize("bf16", [False, True])
def test_a_cpu_plan_holds_what_the_run_trains_with(bf16):
    plan = make_plan("smollm2-135m", "quality", hardware={**CPU, "cpu_bf16": bf16}, check_available=False)
    config = plan.config
    assert (config.lora_rank, config.lora_alpha) == (CPU_KNOWLEDGE_FLOORS["lora_rank"],
                                                     CPU_KNOWLEDGE_FLOORS["lora_alpha"])
    assert config.learning_rate == CPU_KNOWLEDGE_FLOORS["learning_rate"]
    assert "lora_rank 8→16" in plan.reason  # the sentence and the numbers agree
    assert plan.lora_text() == "rank 16, alpha 32, lr 0.002"
    assert config.budget_by_data and plan.steps_text() == "set by your data, ≤ 10 min"
    assert plan.steps_text(25) == "25"
    assert plan.runs_as() == ("cpu, bf16 autocast" if bf16 else "cpu, fp32")


def test_the_plan_and_the_run_agree_on_this_machine(tmp_path):
    plan = make_plan("smollm2-135m", "quality", check_available=False)
    if plan.device != "cpu":
        pytest.skip("this machine plans for a GPU")
    run, _ = resolve_train_config(TrainRequest(data_path=str(tmp_path), model="smollm2-135m", preset="quality",
                                               device="cpu"), "smollm2-135m", "cpu")
    for key in ("lora_rank", "lora_alpha", "learning_rate", "bf16_autocast", "budget_by_data",
                "per_device_train_batch_size", "gradient_accumulation_steps", "max_seq_len"):
        assert plan.config.get(key) == run[key], key


def test_max_steps_from_the_settings_replaces_the_data_budget(monkeypatch):
    monkeypatch.setenv("MAX_STEPS", "40")
    plan = make_plan("smollm2-135m", "quality", hardware=CPU, check_available=False)
    assert plan.steps_text() == "40" and not plan.config.budget_by_data


def test_a_gpu_plan_keeps_the_presets_steps_and_rate():
    gpu = {"gpus": [{"index": 0, "name": "NVIDIA RTX 3060", "total_mb": 12288, "free_mb": 11264}], "device": "cuda"}
    plan = make_plan("smollm2-135m", "quality", hardware=gpu, check_available=False)
    assert plan.steps_text() == "300" and plan.lora_text() == "rank 8, alpha 16, lr 0.0005"
    assert plan.runs_as().startswith("cuda, ")
