"""The training plan: which model, preset and configuration, whether it fits, and how long it takes.

``make_plan`` is what the CLI's and the TUI's plan step show: one sentence of reasons, the memory
estimate against the memory free, and a time estimate from a tokens-per-second guess.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from llmcustoms.hardware.detector import NO_GPU_WARNING, HardwareDetector
from llmcustoms.hardware.report import HardwareReport
from llmcustoms.models.availability import model_availability
from llmcustoms.planning import memory
from llmcustoms.planning.budget import CPU_EPOCHS, CPU_MINUTES, cpu_minutes_estimate, recall_speed
from llmcustoms.training.train_config import TrainConfig
from llmcustoms.utils.config import Settings

#: Dense bf16 tensor TFLOP/s by GPU name (datasheet; the H100/H200 figure is the measured matmul ceiling).
GPU_PEAK_TFLOPS = {
    "H200": 790.0, "H100": 790.0, "GH200": 790.0, "A100": 312.0, "A800": 312.0, "A10G": 70.0, "A10": 125.0,
    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A6000": 155.0, "RTX 6000 ADA": 365.0, "4090": 165.0,
    "4080": 97.0, "4070": 58.0, "4060": 30.0, "3090": 71.0, "3080": 60.0, "3070": 40.0, "3060": 25.0,
    "T4": 65.0, "V100": 125.0, "2080": 40.0, "1080": 9.0, "1660": 10.0, "1650": 6.0,
}
#: Model FLOPs utilisation assumed for LoRA training on a card it keeps busy (16-bit, and 4-bit which
#: dequantizes every matmul).
MFU_GUESS = {"bf16": 0.35, "fp16": 0.35, "4bit": 0.25}
#: A training step costs at least this much per layer, however fast the card: kernel launches and
#: Python (PEFT, autocast, the Trainer). Measured on H200s with TinyLlama (22 layers): 0.11–0.25 s a
#: step through transformers' Trainer depending on the machine, ~1.5× that with gradient checkpointing.
STEP_FLOOR_S_PER_LAYER = 0.008
STEP_FLOOR_S_PER_LAYER_CHECKPOINTED = 0.012
#: Effective fp32 GFLOP/s a CPU core gives LoRA training (170 tokens/s for SmolLM2-135M on 2 cores).
CPU_GFLOPS_PER_CORE = 46.0
#: bf16 autocast on a CPU with AVX512-BF16/AMX: ~260 vs ~170 tokens/s measured.
CPU_BF16_SPEEDUP = 1.5
#: Loading the model, evaluating (loss and knowledge questions) before and after, saving: roughly, in minutes.
FIXED_MINUTES_CUDA = 1.0
FIXED_MINUTES_CPU = 2.0  # load, the knowledge questions before and after, save


@dataclass(frozen=True)
class Plan:
    """A training plan: what will run, why, whether it fits, and about how long it takes."""

    model: str
    preset: str
    config: TrainConfig
    reason: str
    estimate_mb: int
    free_mb: int
    fits: bool
    estimated_minutes: float
    tokens_per_s: float
    device: str
    warnings: list[str] = field(default_factory=list)
    speed_source: str = "a guess"  # or "measured here by an earlier run"
    # Whether the model can be had now (a good folder, the cache, the embedded model, or a download whose
    # host answers); when not, ``availability`` is the sentence saying why and ``offline_alternative``
    # the model that works instead (the embedded one). A plan that is not available must not be approved.
    available: bool = True
    availability: str = ""
    offline_alternative: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``config`` as the configuration dict)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        out["config"] = self.config.to_dict()
        return out

    def runs_as(self) -> str:
        """Device and precision as the run will train: on a CPU with bf16 autocast the frozen weights are bf16."""
        config = self.config
        words = {"bf16": "bf16", "fp16": "fp16", "4bit": "4-bit (QLoRA)", "fp32": "fp32"}
        precision = "bf16 autocast" if config.device == "cpu" and config.bf16_autocast else \
            words.get(config.precision, config.precision)
        parts = [config.device, precision] + (["gradient checkpointing"] if config.gradient_checkpointing else [])
        return ", ".join(part for part in parts if part)

    def steps_text(self, max_steps: int | None = None) -> str:
        """The optimizer steps the run will take: ``max_steps`` when given (--max-steps), else MAX_STEPS or the
        preset's, else on a CPU 'set by your data' with its time cap."""
        if max_steps:
            return str(max_steps)
        config = self.config
        if config.budget_by_data:
            cap = config.budget_minutes
            return "set by your data" + (f", ≤ {cap:g} min" if cap else "")
        return str(config.max_steps)

    def lora_text(self) -> str:
        """The adapter the run trains: rank, alpha and learning rate (after the CPU adjustments)."""
        config = self.config
        text = f"rank {config.lora_rank}, alpha {config.lora_alpha}"
        return text + (f", lr {config.learning_rate:g}" if config.learning_rate else "")

    def summary_lines(self) -> list[str]:
        """A few lines for a terminal or a TUI panel."""
        lines = [self.reason,
                 f"Memory: ~{self.estimate_mb / 1024:.1f} GB needed of {self.free_mb / 1024:.1f} GB free"
                 f" ({'fits' if self.fits else 'does NOT fit'}).",
                 f"Time: ~{self.estimated_minutes:.0f} min at ~{self.tokens_per_s:,.0f} tokens/s "
                 f"({self.speed_source}; the run measures its own first steps and re-plans)."]
        if not self.available:
            lines.append(f"Not available: {self.availability}")
        return lines + [f"Warning: {w}" for w in self.warnings]


def gpu_peak_tflops(name: str | None) -> float:
    """The card's dense bf16 TFLOP/s by name; 30 for a card not in the table."""
    upper = (name or "").upper()
    for key in sorted(GPU_PEAK_TFLOPS, key=len, reverse=True):
        if key in upper:
            return GPU_PEAK_TFLOPS[key]
    return 30.0


def guess_tokens_per_s(config: dict[str, Any], hardware: HardwareReport | dict[str, Any]) -> float:
    """Training tokens a second for ``config`` on ``hardware``: LoRA costs ~4 × params FLOPs a token
    (forward, and backward to the activations only), 6 × with gradient checkpointing's recompute; on a
    GPU a step also takes at least a per-layer floor (small models on big cards are launch-bound)."""
    if isinstance(hardware, HardwareReport):
        hardware = hardware.to_dict()
    est = config.get("memory_estimate_mb") or {}
    params = float(est.get("model_params") or 1.1e9)
    flops_per_token = (6.0 if config.get("gradient_checkpointing") else 4.0) * params
    if config.get("device") == "cuda":
        gpus = hardware.get("gpus") or [{}]
        peak = gpu_peak_tflops(gpus[0].get("name")) * 1e12
        tokens = int(config.get("per_device_train_batch_size", 1)) * int(config.get("max_seq_len", 512))
        compute_s = tokens * flops_per_token / (MFU_GUESS.get(config.get("precision", "bf16"), 0.25) * peak)
        layers = int(est.get("num_layers") or 22)
        floor = STEP_FLOOR_S_PER_LAYER_CHECKPOINTED if config.get("gradient_checkpointing") else STEP_FLOOR_S_PER_LAYER
        return tokens / max(compute_s, floor * layers)
    cores = int(hardware.get("cpu_count") or 1)
    speed = CPU_GFLOPS_PER_CORE * 1e9 * cores * (CPU_BF16_SPEEDUP if config.get("bf16_autocast") else 1.0)
    return speed / flops_per_token


def _estimated_tokens(data_report: Any) -> int | None:
    if data_report is None:
        return None
    if isinstance(data_report, dict):
        value = data_report.get("estimated_tokens")
    else:
        value = getattr(data_report, "estimated_tokens", None)
    return int(value) if value else None


def make_plan(model: str = "auto", preset: str | None = None, data_report: Any = None,
              hardware: HardwareReport | dict[str, Any] | None = None,
              env_config: Settings | dict[str, Any] | None = None, check_available: bool = True) -> Plan:
    """The plan for training ``model`` ('auto': chosen by hardware) with ``preset`` on ``hardware``.

    ``hardware`` is a ``HardwareReport`` or its dict (detected now when None); ``env_config`` the
    caller's ``Settings`` (read now when None); ``data_report`` a
    ``DataReport`` (or its dict) whose ``estimated_tokens`` sharpen the time estimate. A choice that will
    not fit is still planned, with ``fits`` False and a sentence saying so in ``reason`` and ``warnings``.
    ``check_available``: also find out whether the model can be had now (``models.check``: a damaged
    folder, or a model to download whose host does not answer a quick probe) into ``available``.
    """

    detector = HardwareDetector(env_config=env_config)
    if hardware is not None:
        detector._detected = _complete_hardware(hardware.to_dict() if isinstance(hardware, HardwareReport)
                                                else hardware)
    report = detector.detect_report()
    preset = preset or detector._settings().get("DEFAULT_PRESET") or "quality"
    vram = detector.detect_gpu_memory()
    if not model or model == "auto":
        model = detector.suggest_model(vram)
    availability = None
    if check_available:
        # Before the estimate: a damaged config.json is said once, here, not glued into the plan's reason.
        availability = model_availability(model, thorough=False)  # no torch in a TUI's plan screen
    config = detector.get_training_config(model, vram, preset=preset)
    max_steps = detector._settings().get("MAX_STEPS")
    if max_steps:  # MAX_STEPS caps a run that names no steps, and then its data does not set them
        config.update(max_steps=int(max_steps), budget_by_data=False)
    est = config.get("memory_estimate_mb") or {}
    estimate_mb = int(est.get("total_mb") or 0)
    free_mb = int(config.get("budget_mb") or 0)

    # A CPU plan's reason already says there is no GPU: "No GPU…" once, not twice.
    warnings = [w for w in report.warnings if not (w == NO_GPU_WARNING and config.get("cpu_note"))]
    if not config["fits"]:
        warnings.append(f"{model} with the {config['preset']} preset needs ~{estimate_mb / 1024:.1f} GB but only "
                        f"{free_mb / 1024:.1f} GB is free: it will run out of memory. Choose a smaller model.")
    elif estimate_mb > memory.SAFETY * free_mb:
        warnings.append(f"Memory is tight (~{estimate_mb / 1024:.1f} of {free_mb / 1024:.1f} GB): close other "
                        "programs using the GPU, or choose the highspeed preset.")

    tokens_per_s = guess_tokens_per_s(config, detector.detect())
    speed_source = "a guess"

    measured = recall_speed(model, config["device"])
    if measured:
        tokens_per_s, speed_source = measured, "measured here by an earlier run"
    step_tokens = config["per_device_train_batch_size"] * config["gradient_accumulation_steps"] * config["max_seq_len"]
    data_tokens = _estimated_tokens(data_report)
    if data_tokens:
        # Packed rows are full, but a tiny data set can not fill a step: a step is then the whole set.
        step_tokens = min(step_tokens, max(data_tokens, config["max_seq_len"]))
        epochs = config["max_steps"] * step_tokens / max(1, data_tokens)
        if epochs > 30:
            warnings.append(f"The data (~{data_tokens:,} tokens) will be seen ~{epochs:.0f} times: the model may "
                            "learn it by heart. Add more text or choose the highspeed preset.")
    train_tokens = config["max_steps"] * step_tokens
    fixed = FIXED_MINUTES_CUDA if config["device"] == "cuda" else FIXED_MINUTES_CPU
    minutes = fixed + train_tokens / max(tokens_per_s, 1e-6) / 60.0
    if config["device"] == "cpu" and config.get("budget_by_data"):
        # On a CPU the steps come from the data (passes over the examples) capped by minutes.

        cap = CPU_MINUTES.get(config["preset"], 10.0)
        minutes = fixed + (cpu_minutes_estimate(data_tokens, CPU_EPOCHS.get(config["preset"], 6.0), cap,
                                                tokens_per_s) if data_tokens else cap)
    reason = config["reason"]
    if availability is not None and availability.source == "damaged":
        # The folder's own error is in ``availability``; the reason must not repeat it mid-sentence.
        reason = (f"The model folder could not be read, so the {config['preset']} preset is shown as it is, "
                  "without a memory estimate.")
    return Plan(model=model, preset=config["preset"], config=TrainConfig.from_dict(config), reason=reason,
                estimate_mb=estimate_mb, free_mb=free_mb, fits=bool(config["fits"]),
                estimated_minutes=round(minutes, 1), tokens_per_s=round(tokens_per_s, 1),
                device=config["device"], warnings=warnings, speed_source=speed_source,
                available=availability.ok if availability else True,
                availability="" if availability is None or availability.ok else availability.message,
                offline_alternative=None if availability is None or availability.ok
                else availability.offline_alternative)


def _complete_hardware(hardware: dict[str, Any]) -> dict[str, Any]:
    """A detect()-shaped dict from a partial one (tests and 'what if' plans pass only a few keys)."""
    full: dict[str, Any] = {"device": "cpu", "gpus": [], "usable_vram_mb": 0, "cpu_count": 1, "cpu_bf16": False,
            "ram_total_mb": 8192, "ram_available_mb": 8192, "warnings": []}
    full.update(hardware)
    if "usable_vram_mb" not in hardware and full["gpus"]:
        full["usable_vram_mb"] = int(full["gpus"][0].get("free_mb") or full["gpus"][0].get("total_mb") or 0)
    if "device" not in hardware and full["usable_vram_mb"] > 0:
        full["device"] = "cuda"
    return full
