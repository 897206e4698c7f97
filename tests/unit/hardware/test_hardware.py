"""HardwareDetector: detect()'s shape and values, FORCE_CPU and MAX_VRAM_GB, the seed's methods."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from llmcustoms.hardware.detector import HardwareDetector, cpu_supports_bf16
from llmcustoms.models.registry import EMBEDDED_MODEL, MODELS

DETECT_KEYS = {"gpus", "cpu_count", "ram_total_mb", "ram_available_mb", "disk_free_mb", "torch_version",
               "cuda_available", "cuda_version", "nvml_available", "device", "warnings"}


def _fake_gpu(detector: HardwareDetector, total_mb: int = 8192, free_mb: int | None = None, name: str = "Test GPU"):
    """Make ``detector`` believe it sits at a GPU of ``total_mb`` (the CPU box has none)."""
    info = dict(detector.detect())
    free = total_mb if free_mb is None else free_mb
    info["gpus"] = [{"index": 0, "name": name, "total_mb": total_mb, "free_mb": free, "used_mb": total_mb - free,
                     "bf16_supported": True}]
    info["device"] = "cpu" if detector.force_cpu else "cuda"
    cap = detector.max_vram_gb
    info["usable_vram_mb"] = min(free, int(cap * 1024)) if cap else free
    detector._detected = info
    return detector


def test_detect_shape_and_values_match_psutil():
    info = HardwareDetector().detect()
    assert DETECT_KEYS <= set(info)
    vm = psutil.virtual_memory()
    assert info["ram_total_mb"] == vm.total // (1024 * 1024)
    assert abs(info["ram_available_mb"] - vm.available // (1024 * 1024)) < 1024
    assert info["cpu_count"] >= 1
    assert info["disk_free_mb"] > 0
    assert isinstance(info["warnings"], list) and all(isinstance(w, str) for w in info["warnings"])
    assert info["cpu_bf16"] == cpu_supports_bf16()
    for gpu in info["gpus"]:
        assert {"index", "name", "total_mb", "free_mb", "used_mb"} <= set(gpu)


def test_cpu_box_reports_cpu_with_a_warning():
    info = HardwareDetector().detect()
    if info["cuda_available"]:
        pytest.skip("this machine has a GPU")
    assert info["device"] == "cpu" and info["gpus"] == []
    assert any("CPU" in w for w in info["warnings"])
    assert HardwareDetector().detect_gpu_memory() == 0


def test_force_cpu_and_max_vram_are_honoured(monkeypatch):
    monkeypatch.setenv("MAX_VRAM_GB", "4")
    detector = _fake_gpu(HardwareDetector(), total_mb=80_000)
    assert detector.max_vram_gb == 4.0
    assert detector.detect_gpu_memory() == 4096
    monkeypatch.setenv("FORCE_CPU", "1")
    forced = _fake_gpu(HardwareDetector(), total_mb=80_000)
    assert forced.detect_gpu_memory() == 0
    assert forced.get_training_config("tinyllama", 80_000)["device"] == "cpu"
    assert forced.suggest_model(80_000) == EMBEDDED_MODEL


def test_max_vram_from_a_dotenv_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MAX_VRAM_GB=6\n")
    monkeypatch.chdir(tmp_path)
    assert HardwareDetector().max_vram_gb == 6.0


def test_cpu_config_is_fp32_with_the_cpu_sentence():
    config = HardwareDetector().get_training_config("smollm2-135m", 0, preset="quality")
    assert config["device"] == "cpu" and config["precision"] == "fp32"
    assert config["reason"].startswith("No GPU: training on the CPU")
    assert "Steps are set by your data" in config["reason"] and config["max_seq_len"] <= 256
    assert config["bf16_autocast"] == cpu_supports_bf16()
    assert config["fits"] is True
    assert config["memory_estimate_mb"]["total_mb"] > 0


def test_cuda_config_has_the_contract_keys_and_keeps_the_effective_batch():
    detector = _fake_gpu(HardwareDetector(), total_mb=4096)
    for preset, effective in (("highspeed", 8), ("quality", 8), ("bestaccuracy", 8)):
        config = detector.get_training_config("tinyllama", 4096, preset=preset)
        for key in ("device", "precision", "gradient_checkpointing", "optim", "per_device_train_batch_size",
                    "gradient_accumulation_steps", "max_seq_len", "memory_estimate_mb", "fits", "reason"):
            assert key in config
        assert config["per_device_train_batch_size"] * config["gradient_accumulation_steps"] == effective
        assert config["fits"]


def test_small_cards_get_sensible_advice():
    detector = _fake_gpu(HardwareDetector(), total_mb=4096)
    four = detector.get_training_config("tinyllama", 4096, preset="highspeed")
    assert four["precision"] == "4bit" and four["fits"]
    assert four["per_device_train_batch_size"] == 4
    assert "4-bit" in four["reason"] and "highspeed" in four["reason"]
    # Plenty of memory: 16-bit, no checkpointing.
    big = detector.get_training_config("tinyllama", 24 * 1024, preset="quality")
    assert big["precision"] == "bf16" and not big["gradient_checkpointing"]
    assert detector.suggest_model(4096) == "tinyllama"
    for gb in (6, 8, 24):
        name = detector.suggest_model(gb * 1024)
        assert name in MODELS and not MODELS[name].gated
        assert detector.get_training_config(name, gb * 1024, preset="quality")["fits"]
    sizes = [MODELS[detector.suggest_model(gb * 1024)].params_m for gb in (4, 6, 8, 24)]
    assert sizes == sorted(sizes)  # more memory never suggests a smaller model
    assert detector.suggest_model(0) == EMBEDDED_MODEL


def test_fp16_on_cards_without_bf16():
    detector = _fake_gpu(HardwareDetector(), total_mb=16 * 1024, name="Tesla T4")
    detector._detected["gpus"][0]["bf16_supported"] = False
    assert detector.get_training_config("tinyllama", 16 * 1024, preset="quality")["precision"] == "fp16"


def test_impossible_choice_is_flagged():
    detector = _fake_gpu(HardwareDetector(), total_mb=1024)
    config = detector.get_training_config("llama-3.2-3b", 1024, preset="bestaccuracy")
    assert config["fits"] is False
    assert "does not fit" in config["reason"]


def test_optimal_batch_size_and_model_size_strings():
    detector = _fake_gpu(HardwareDetector(), total_mb=80_000)
    assert detector.get_optimal_batch_size("1.1B") >= 4
    assert detector._spec_for("135M").name == "smollm2-135m"
    assert detector._spec_for("1.1B").name == "tinyllama"
    small = _fake_gpu(HardwareDetector(), total_mb=3072)
    assert small.get_optimal_batch_size("tinyllama") <= detector.get_optimal_batch_size("tinyllama")


def test_unknown_model_gets_the_preset_with_a_sentence():
    config = HardwareDetector().get_training_config("/nowhere/model", 0, preset="highspeed")
    assert config["memory_estimate_mb"] is None and "preset is used as it is" in config["reason"]


def test_importing_does_not_import_torch():
    code = ("import sys; import llmcustoms.hardware.detector, llmcustoms.core.planner, llmcustoms.planning.memory; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_probe_in_a_child_process_gives_the_same_report_and_keeps_torch_out(monkeypatch):
    """The TUI's probe: a child process does the detecting (its torch import never holds the TUI's GIL)."""
    from llmcustoms.hardware.probe import detect_in_subprocess

    monkeypatch.setenv("MAX_VRAM_GB", "6")  # the child inherits the environment
    code = ("import sys, json; from llmcustoms.hardware.probe import detect_in_subprocess; "
            "report = detect_in_subprocess(); print(json.dumps([report, 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    report, torch_in_parent = __import__("json").loads(out)
    assert torch_in_parent is False
    here = HardwareDetector().detect()
    assert DETECT_KEYS <= set(report)
    assert report["max_vram_gb"] == 6.0
    for key in ("device", "cpu_count", "ram_total_mb", "torch_version", "cuda_available", "gpus"):
        assert report[key] == here[key], key
    assert detect_in_subprocess()["max_vram_gb"] == 6.0


def test_a_failing_probe_child_is_one_sentence(tmp_path, monkeypatch):
    from llmcustoms.errors import LLMCustomsError
    from llmcustoms.hardware import probe as hardware_probe

    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                      "echo 'RuntimeError: CUDA driver initialization failed' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(hardware_probe.sys, "executable", str(broken))
    with pytest.raises(LLMCustomsError, match="The hardware probe failed: RuntimeError: CUDA driver"):
        hardware_probe.detect_in_subprocess()
    broken.write_text("#!/bin/sh\necho 'not json'\n")
    with pytest.raises(LLMCustomsError, match="not a report"):
        hardware_probe.detect_in_subprocess()
