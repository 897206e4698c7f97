"""The memory estimate and the planner."""

from __future__ import annotations

import pytest

from llmcustoms.core.planner import Plan, make_plan
from llmcustoms.models.registry import MODELS
from llmcustoms.planning import memory
from llmcustoms.planning.memory import Arch, estimate_training_memory, resolve_arch

GPU8 = {"gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3070", "total_mb": 8192, "free_mb": 8192,
                  "used_mb": 0, "bf16_supported": True}], "cpu_count": 8}


def test_architecture_counts_match_the_published_sizes():
    for spec in MODELS.values():
        arch = resolve_arch(spec)
        # The registry's parameter counts are the published ones; the architecture must agree within 3 %.
        assert arch.total_params == pytest.approx(spec.params_m * 1e6, rel=0.03), spec.name


def test_estimate_grows_with_batch_seq_and_rank():
    for precision in ("fp32", "bf16", "4bit"):
        for gc in (False, True):
            def total(precision=precision, gc=gc, **kw):
                args = {"batch_size": 2, "seq_len": 512, "lora_rank": 8} | kw
                return estimate_training_memory("tinyllama", precision, gradient_checkpointing=gc, **args)["total_mb"]
            assert total(batch_size=1) < total(batch_size=2) < total(batch_size=4)
            assert total(seq_len=256) < total(seq_len=512) < total(seq_len=1024)
            assert total(lora_rank=4) < total(lora_rank=8) < total(lora_rank=16)


def test_parts_and_precisions():
    bf16 = estimate_training_memory("tinyllama", "bf16", 2, 512, 8)
    nf4 = estimate_training_memory("tinyllama", "4bit", 2, 512, 8)
    fp32 = estimate_training_memory("tinyllama", "fp32", 2, 512, 8)
    assert nf4["weights_mb"] < bf16["weights_mb"] < fp32["weights_mb"]
    # bf16 TinyLlama is 2.2 GB; 4-bit is ~0.5 byte a linear weight plus 16-bit embeddings and lm_head.
    assert bf16["weights_mb"] == pytest.approx(1100e6 * 2 / memory.MB, rel=0.05)
    assert 650 < nf4["weights_mb"] < 800
    assert bf16["cuda_context_mb"] == memory.CUDA_CONTEXT_MB and "runtime_mb" in fp32
    assert bf16["allocator_peak_mb"] + bf16["cuda_context_mb"] == bf16["total_mb"]
    parts = ("weights_mb", "lora_params_mb", "gradients_mb", "optimizer_mb", "activations_mb", "transient_mb",
             "cuda_context_mb", "allocator_overhead_mb")
    assert sum(bf16[p] for p in parts) == pytest.approx(bf16["total_mb"], abs=len(parts))
    # Gradient checkpointing saves a lot of activations; an 8-bit optimizer saves optimizer state.
    with_gc = estimate_training_memory("tinyllama", "bf16", 2, 512, 8, gradient_checkpointing=True)
    assert with_gc["activations_mb"] < bf16["activations_mb"] / 10
    assert estimate_training_memory("tinyllama", "bf16", 2, 512, 8, optim="adamw_bnb_8bit")["optimizer_mb"] \
        < bf16["optimizer_mb"] / 3
    # The logits matter: batch × seq × vocab × 12 bytes.
    assert bf16["logits_mb"] == pytest.approx(2 * 512 * 32000 * 12 / memory.MB, abs=1)


def test_arch_from_a_model_folder(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,'
        ' "intermediate_size": 128, "vocab_size": 49152, "tie_word_embeddings": true}')
    arch = resolve_arch(str(tmp_path))
    assert isinstance(arch, Arch) and arch.num_layers == 2 and arch.kv_dim == 32
    with pytest.raises(ValueError, match="No architecture"):
        resolve_arch(str(tmp_path / "missing"))


def test_allocator_cap_fraction():
    assert memory.allocator_cap_fraction(4, 81_559) == pytest.approx((4096 - memory.CUDA_CONTEXT_MB) / 81_559)
    assert memory.allocator_cap_fraction(200, 81_559) == 1.0


def test_plan_on_a_gpu():
    plan = make_plan("tinyllama", "quality", hardware=GPU8)
    assert isinstance(plan, Plan) and plan.device == "cuda" and plan.fits
    assert plan.reason.startswith("8 GB free: TinyLlama in ")
    assert "quality preset" in plan.reason and "batch 2 × accumulation 4" in plan.reason
    assert plan.free_mb == 8192 and 0 < plan.estimate_mb <= plan.free_mb
    assert plan.estimated_minutes > 0 and plan.tokens_per_s > 0
    data = plan.to_dict()
    assert data["config"]["precision"] in ("bf16", "4bit") and data["fits"] is True
    assert plan.summary_lines()[0] == plan.reason


def test_plan_auto_picks_a_model_and_data_sharpens_the_time():
    auto = make_plan("auto", "highspeed", hardware=GPU8)
    assert auto.model in MODELS and auto.fits
    small = make_plan("tinyllama", "highspeed", data_report={"estimated_tokens": 2_000}, hardware=GPU8)
    big = make_plan("tinyllama", "highspeed", data_report={"estimated_tokens": 2_000_000}, hardware=GPU8)
    assert small.estimated_minutes <= big.estimated_minutes
    assert any("by heart" in w for w in small.warnings)


def test_plan_flags_an_impossible_choice():
    tiny_gpu = {"gpus": [{"index": 0, "name": "GT 1030", "total_mb": 2048, "free_mb": 2048, "used_mb": 0}]}
    plan = make_plan("llama-3.2-3b", "bestaccuracy", hardware=tiny_gpu)
    assert plan.fits is False
    assert "does not fit" in plan.reason
    assert any("run out of memory" in w for w in plan.warnings)


def test_plan_on_the_cpu_says_so():
    cpu = {"device": "cpu", "gpus": [], "cpu_count": 2, "cpu_bf16": False, "ram_available_mb": 16_000}
    plan = make_plan("smollm2-135m", "quality", hardware=cpu)
    assert plan.device == "cpu" and plan.config["precision"] == "fp32" and plan.fits
    assert plan.reason.startswith("No GPU: training on the CPU. Steps are set by your data")
    # ~170 tokens/s on 2 cores (DESIGN.md); no data yet: the quality preset's cap (10 min) plus load and scoring.
    assert 100 < plan.tokens_per_s < 300 and plan.speed_source == "a guess"
    assert plan.estimated_minutes == 12.0
    # With a folder's size the steps come from the data: 4k text tokens × 10 × 6 passes at 171 tok/s ≈ 23 min,
    # capped at 10; a small folder takes less.
    small = make_plan("smollm2-135m", "quality", hardware=cpu, data_report={"estimated_tokens": 500})
    assert small.estimated_minutes < plan.estimated_minutes


def test_plan_uses_the_speed_an_earlier_run_measured_here():
    from llmcustoms.planning.budget import remember_speed

    cpu = {"device": "cpu", "gpus": [], "cpu_count": 2, "cpu_bf16": False, "ram_available_mb": 16_000}
    guessed = make_plan("smollm2-135m", "quality", hardware=cpu, data_report={"estimated_tokens": 1000})
    remember_speed("smollm2-135m", "cpu", guessed.tokens_per_s * 4)
    measured = make_plan("smollm2-135m", "quality", hardware=cpu, data_report={"estimated_tokens": 1000})
    assert measured.speed_source.startswith("measured") and abs(measured.tokens_per_s - guessed.tokens_per_s * 4) < 0.2
    assert measured.estimated_minutes < guessed.estimated_minutes
    assert "measured here" in " ".join(measured.summary_lines())
