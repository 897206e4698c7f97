"""HardwareDetector: what this machine has (GPUs, VRAM, CPU, RAM, disk) and what to train on it.

Recommendations come from the memory estimate in :mod:`llmcustoms.planning.memory`, never from a bare
table: a configuration is chosen because its estimated peak fits the memory at hand.

torch is imported inside methods only: the TUI imports this module and must start quickly.
VRAM is read through NVML (``nvidia-ml-py``) when it is installed, because asking PyTorch
(``torch.cuda.mem_get_info``) creates a CUDA context that holds a few hundred MB of the card for
as long as the asking process lives.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from llmcustoms.hardware.cpu import cpu_has_native_bf16
from llmcustoms.hardware.report import GpuInfo, HardwareReport
from llmcustoms.models.registry import EMBEDDED_MODEL, MODELS, ModelSpec, find_spec
from llmcustoms.paths import models_dir
from llmcustoms.planning import memory
from llmcustoms.planning.presets import adapt_for_cpu, get_preset
from llmcustoms.utils.config import Settings
from llmcustoms.utils.disk import free_bytes
from llmcustoms.utils.logger import get_logger

log = get_logger("llmcustoms.hardware")

#: Sequences are never cut shorter than this to make a model fit.
_MIN_SEQ_LEN = 256
#: The default GPU model: suggested (in 4-bit if need be) unless a larger one fits in 16 bit.
TARGET_MODEL = "tinyllama"


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX): bf16 autocast then pays off."""
    # One reading of the CPU's flags for the plan and for training (``hardware/cpu.py``), so the two
    # can never disagree about the same CPU.
    return cpu_has_native_bf16()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver_present() -> bool:
    """True when an NVIDIA driver is visible on this machine (whatever PyTorch says)."""
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def _disk_free_mb(path: Path) -> int:
    """Free space where ``path`` is (or would be created), in MB (0 when it cannot be read)."""
    free = free_bytes(path)
    return int(free // memory.MB) if free is not None else 0


def _nvml_gpus() -> tuple[bool, list[dict[str, Any]], str | None]:
    """(NVML importable, GPUs it reports, driver version). Never raises."""
    try:
        import pynvml
    except ImportError:
        return False, [], None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, or no GPU: NVML is importable but has nothing to say
        return True, [], None
    gpus: list[dict[str, Any]] = []
    driver = None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append({
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "total_mb": int(info.total // memory.MB),
                "free_mb": int(info.free // memory.MB),
                "used_mb": int(info.used // memory.MB),
            })
    except Exception as error:  # a half-working NVML must not break detection
        log.debug("NVML query failed: %s", error)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return True, gpus, driver


#: The hardware warning for a machine without a usable GPU; a CPU plan's reason says the same, so a plan
#: shows one of the two.
NO_GPU_WARNING = "No CUDA GPU: training runs on the CPU, shortened so a run finishes in minutes."


class HardwareDetector:
    """Detects GPUs, VRAM, CPU, RAM and disk, and recommends a model and a training configuration.

    The stable public methods are ``detect_gpu_memory``, ``get_optimal_batch_size``, ``suggest_model``
    and ``get_training_config`` (a dict). ``MAX_VRAM_GB`` caps the VRAM every
    recommendation uses; ``FORCE_CPU`` makes every recommendation a CPU one.
    ``detect_report()`` is the typed ``HardwareReport``; ``detect()`` is its dict.
    ``env_config``: the caller's ``Settings`` (or a ``load_env_config()`` dict); None: read on first use.
    """

    def __init__(self, env_config: Settings | dict[str, Any] | None = None) -> None:
        self._env_config = env_config.to_dict() if isinstance(env_config, Settings) else env_config
        self._detected: dict[str, Any] | None = None

    # -- settings ---------------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        if self._env_config is None:
            self._env_config = Settings.load().to_dict()
        return self._env_config

    @property
    def force_cpu(self) -> bool:
        return bool(self._settings().get("FORCE_CPU"))

    @property
    def max_vram_gb(self) -> float | None:
        value = self._settings().get("MAX_VRAM_GB")
        return float(value) if value else None

    # -- detection --------------------------------------------------------------------------------
    def detect(self, refresh: bool = False) -> dict[str, Any]:
        """What this machine has, as a JSON-ready dict (``HardwareReport.to_dict()``), with plain-word warnings."""
        if self._detected is not None and not refresh:
            return self._detected
        self._detected = self._detect().to_dict()
        return self._detected

    def detect_report(self, refresh: bool = False) -> HardwareReport:
        """What this machine has (detected once, then remembered): the typed report."""
        return HardwareReport.from_dict(self.detect(refresh))

    def _detect(self) -> HardwareReport:
        """Look at the machine now."""
        import psutil


        warnings: list[str] = []
        torch_version, cuda_build, cuda_available = None, None, False
        torch_gpus: list[dict[str, Any]] = []
        try:
            import torch

            torch_version = torch.__version__
            cuda_build = torch.version.cuda
            cuda_available = bool(torch.cuda.is_available())
            if cuda_available:
                for index in range(torch.cuda.device_count()):
                    major, minor = torch.cuda.get_device_capability(index)
                    torch_gpus.append({
                        "index": index,
                        "name": torch.cuda.get_device_name(index),
                        "compute_capability": f"{major}.{minor}",
                        # bf16 tensor cores arrived with Ampere (8.0); older cards train in fp16.
                        "bf16_supported": major >= 8,
                    })
        except ImportError:
            warnings.append("PyTorch is not installed: nothing can be trained until it is (make setup).")

        nvml_available, nvml_gpus, driver = _nvml_gpus() if cuda_available or _nvidia_driver_present() else (
            self._nvml_importable(), [], None)
        gpus: list[dict[str, Any]] = []
        for info in torch_gpus:
            entry = dict(info)
            match = next((g for g in nvml_gpus if g["index"] == info["index"]), None)
            if match is not None:
                entry.update({k: match[k] for k in ("total_mb", "free_mb", "used_mb")})
                entry["memory_source"] = "nvml"
            else:
                entry.update(self._torch_memory(info["index"]))
                entry["memory_source"] = "torch"
            gpus.append(entry)

        force_cpu = self.force_cpu
        cap_gb = self.max_vram_gb
        device = "cuda" if gpus and not force_cpu else "cpu"
        usable = 0
        if device == "cuda":
            usable = gpus[0]["free_mb"]
            if cap_gb is not None:
                usable = min(usable, int(cap_gb * 1024))

        vm = psutil.virtual_memory()
        cpu_bf16 = cpu_supports_bf16()
        cache = models_dir()
        disk_free = _disk_free_mb(cache)

        if not gpus:
            if _nvidia_driver_present() and torch_version and not cuda_build:
                warnings.append(
                    f"An NVIDIA driver is present but this PyTorch ({torch_version}) was built without CUDA: "
                    "install a CUDA build of PyTorch to train on the GPU.")
            elif _nvidia_driver_present() and torch_version:
                warnings.append("An NVIDIA driver is present but PyTorch sees no usable GPU (driver too old for "
                                f"CUDA {cuda_build}, or CUDA_VISIBLE_DEVICES hides it).")
            warnings.append(NO_GPU_WARNING)
        else:
            if not nvml_available:
                warnings.append("nvidia-ml-py is not installed, so VRAM is read through PyTorch, which holds a "
                                "few hundred MB of the card while it asks: pip install nvidia-ml-py.")
            if force_cpu:
                warnings.append("FORCE_CPU is set: training on the CPU although a GPU is present.")
            if cap_gb is not None and cap_gb * 1024 > gpus[0]["total_mb"]:
                warnings.append(f"MAX_VRAM_GB={cap_gb:g} is more than the card has "
                                f"({gpus[0]['total_mb'] / 1024:.1f} GB); the card's size is used.")
            elif cap_gb is not None and not force_cpu:
                warnings.append(f"MAX_VRAM_GB={cap_gb:g}: planning and training as if the card had {cap_gb:g} GB.")
            if gpus[0]["free_mb"] < 0.5 * gpus[0]["total_mb"]:
                warnings.append(f"Other programs use {gpus[0]['used_mb'] / 1024:.1f} GB of "
                                f"{gpus[0]['name']}: only {gpus[0]['free_mb'] / 1024:.1f} GB is free for training.")
        if disk_free < 5 * 1024:
            warnings.append(f"Only {disk_free / 1024:.1f} GB free on the disk holding the model cache ({cache}): "
                            "a model download may not fit.")
        if vm.available < 2 * 1024 * memory.MB:
            warnings.append(f"Only {vm.available / memory.MB / 1024:.1f} GB of RAM available: loading a model may fail.")

        return HardwareReport(
            device=device,
            gpus=tuple(GpuInfo.from_dict(gpu) for gpu in gpus),
            usable_vram_mb=usable,
            max_vram_gb=cap_gb,
            force_cpu=force_cpu,
            cpu_count=os.cpu_count() or 1,
            cpu_physical_cores=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
            cpu_name=_cpu_name(),
            cpu_bf16=cpu_bf16,
            ram_total_mb=int(vm.total // memory.MB),
            ram_available_mb=int(vm.available // memory.MB),
            disk_free_mb=disk_free,
            cache_dir=str(cache),
            torch_version=torch_version,
            cuda_available=cuda_available,
            cuda_version=cuda_build,
            nvml_available=nvml_available,
            driver_version=driver,
            warnings=tuple(warnings),
        )

    @staticmethod
    def _nvml_importable() -> bool:
        try:
            import pynvml  # noqa: F401
        except ImportError:
            return False
        return True

    @staticmethod
    def _torch_memory(index: int) -> dict[str, int]:
        """Total/free/used VRAM of GPU ``index`` through PyTorch (creates a CUDA context)."""
        import torch

        try:
            free, total = torch.cuda.mem_get_info(index)
        except Exception:  # a busy or broken device: report its size, nothing free
            total = torch.cuda.get_device_properties(index).total_memory
            free = 0
        return {"total_mb": int(total // memory.MB), "free_mb": int(free // memory.MB),
                "used_mb": int((total - free) // memory.MB)}

    def _bf16_gpu(self) -> bool:
        """Whether the first GPU trains in bf16 (assumed so when no GPU was detected, e.g. planning ahead)."""
        gpu = self.detect_report().first_gpu
        return gpu is None or gpu.bf16_supported is None or gpu.bf16_supported

    # -- the stable public methods ---------------------------------------------------------------------
    def detect_gpu_memory(self) -> int:
        """MB of VRAM usable for training: the first GPU's free memory, capped by MAX_VRAM_GB; 0 on the CPU."""
        report = self.detect_report()
        return report.usable_vram_mb if report.device == "cuda" else 0

    def get_optimal_batch_size(self, model_size: str) -> int:
        """The largest micro-batch (1–16, powers of two) at 512 tokens that fits this machine for a model.

        ``model_size`` is a registry name, a Hub id or folder, or a size such as '1.1B' / '135M' (then
        the closest registry model stands in for its architecture).
        """
        spec = self._spec_for(model_size)
        vram = self.detect_gpu_memory()
        best = 1
        for batch in (1, 2, 4, 8, 16):
            config = self.get_training_config(spec.name, vram, batch_size=batch, seq_len=512, adapt=False)
            if config["fits"] and config["per_device_train_batch_size"] >= batch:
                best = batch
        return best

    def suggest_model(self, available_vram: int) -> str:
        """The registry model to train with ``available_vram`` MB (0: the CPU → the embedded model).

        The largest openly downloadable model whose estimate at the quality preset fits in 16 bit; where
        that is smaller than the default GPU model, TinyLlama, TinyLlama in 4-bit (QLoRA) when it fits; the
        largest model that fits at all otherwise. 4-bit is a way to fit the target model on a small card,
        not a reason to pick a model that only fits quantized (slower, and a little less accurate).
        """
        if not available_vram or available_vram <= 0 or self.force_cpu:
            return EMBEDDED_MODEL
        candidates = [s for s in MODELS.values() if not s.gated or os.environ.get("HF_TOKEN")]
        fitting16: list[ModelSpec] = []
        fitting: list[ModelSpec] = []
        for spec in sorted(candidates, key=lambda s: s.params_m):
            config = self.get_training_config(spec.name, available_vram, preset="quality")
            if config["fits"] and config["memory_estimate_mb"]["total_mb"] <= memory.SAFETY * available_vram:
                fitting.append(spec)
                if config["precision"] != "4bit":
                    fitting16.append(spec)
        target = MODELS[TARGET_MODEL]
        if fitting16 and fitting16[-1].params_m >= target.params_m:
            return fitting16[-1].name
        if target in fitting:
            return target.name
        if fitting16:
            return fitting16[-1].name
        return fitting[-1].name if fitting else EMBEDDED_MODEL

    def get_training_config(self, model: str, vram: int, preset: str | None = None, seq_len: int | None = None,
                            batch_size: int | None = None, adapt: bool = True) -> dict[str, Any]:
        """The training configuration for ``model`` with ``vram`` MB of VRAM (0: the CPU).

        Starts from ``preset`` (DEFAULT_PRESET when None) and keeps its effective batch (micro-batch ×
        accumulation). On CUDA, in this order, the first that fits (estimated peak ≤ 90 % of ``vram``):
        16-bit; 16-bit with gradient checkpointing; 4-bit NF4; 4-bit with checkpointing; then a smaller
        micro-batch (more accumulation); then shorter sequences. On the CPU: fp32 (bf16 autocast where
        the CPU supports it), never 4-bit, with the preset shortened by ``adapt_for_cpu``.
        ``batch_size`` and ``seq_len`` override the preset's; ``adapt=False`` keeps them fixed.
        """

        preset_name = preset or self._settings().get("DEFAULT_PRESET") or "quality"
        cfg = get_preset(preset_name)
        try:
            arch = memory.resolve_arch(self._spec_or_path(model))
        except ValueError as error:
            return self._unknown_model_config(model, cfg, vram, str(error))
        display = self._display_name(model)
        micro = int(batch_size or cfg["per_device_train_batch_size"])
        effective = int(cfg["per_device_train_batch_size"]) * int(cfg["gradient_accumulation_steps"])
        seq = int(seq_len or cfg.get("max_seq_len", 512))
        rank = int(cfg["lora_rank"])
        optim = "adamw_torch"
        on_cpu = not vram or vram <= 0 or self.force_cpu

        if on_cpu:
            report = self.detect_report()
            cpu_cfg, note = adapt_for_cpu(cfg)
            if adapt:
                micro = min(micro, int(cpu_cfg["per_device_train_batch_size"]))
                effective = int(cpu_cfg["per_device_train_batch_size"]) * int(cpu_cfg["gradient_accumulation_steps"])
                seq = min(seq, int(cpu_cfg["max_seq_len"]))
                # What the run trains with (``training.choices`` adapts the preset the same way): the plan shows it.
                cfg = {**cfg, **{k: cpu_cfg[k] for k in ("lora_rank", "lora_alpha", "learning_rate")}}
                rank = int(cfg["lora_rank"])
            bf16 = report.cpu_bf16
            budget = report.ram_available_mb
            choice: tuple[bool, dict[str, Any]] | None = None
            for gc in (False, True):
                est = memory.estimate_training_memory(arch, "fp32", micro, seq, rank, gc, optim, device="cpu",
                                                      autocast_bf16=bf16)
                choice = (gc, est)
                if est["total_mb"] <= memory.SAFETY * budget:
                    break
            assert choice is not None  # the loop above always runs
            gc, est = choice
            fits = est["total_mb"] <= budget
            reason = (f"{note} {display} in fp32{' with bf16 autocast' if bf16 else ''}, {cfg['name']} preset, "
                      f"batch {micro} × accumulation {max(1, effective // micro)}, {seq} tokens; "
                      f"estimated {est['total_mb'] / 1024:.1f} GB of {budget / 1024:.1f} GB RAM available.")
            if not fits:
                reason += " It will not fit in memory: choose a smaller model."
            return {
                "model": model, "preset": cfg["name"], "device": "cpu", "precision": "fp32", "bf16_autocast": bf16,
                "gradient_checkpointing": gc, "optim": optim, "per_device_train_batch_size": micro,
                "gradient_accumulation_steps": max(1, effective // micro), "max_seq_len": seq,
                "max_steps": int(cpu_cfg["max_steps"]) if adapt else int(cfg["max_steps"]),
                "lora_rank": rank, "lora_alpha": int(cfg["lora_alpha"]), "memory_estimate_mb": est,
                "budget_mb": budget, "fits": fits, "reason": reason, "cpu_note": note,
                "learning_rate": float(cfg["learning_rate"]), "budget_by_data": adapt,
                "budget_minutes": float(cpu_cfg["budget_minutes"]),
            }

        bf16 = self._bf16_gpu()
        half = "bf16" if bf16 else "fp16"
        budget = int(vram)
        limit = memory.SAFETY * budget

        def estimate(precision: str, gc: bool, batch: int, length: int) -> dict[str, Any]:
            return memory.estimate_training_memory(arch, precision, batch, length, rank, gc, optim, device="cuda")

        # Candidates in order of preference: precision and checkpointing first (keep the preset's
        # micro-batch), then smaller micro-batches, then shorter sequences.
        attempts: list[tuple[str, bool, int, int]] = [
            (half, False, micro, seq), (half, True, micro, seq), ("4bit", False, micro, seq), ("4bit", True, micro, seq)]
        if adapt:
            batch = micro // 2
            while batch >= 1:
                attempts += [(half, True, batch, seq), ("4bit", True, batch, seq)]
                batch //= 2
            length = seq // 2
            while length >= _MIN_SEQ_LEN:
                attempts.append(("4bit", True, 1, length))
                length //= 2
        chosen = None
        for precision, gc, batch, length in attempts:
            est = estimate(precision, gc, batch, length)
            if est["total_mb"] <= limit:
                chosen = (precision, gc, batch, length, est)
                break
        if chosen is None:
            precision, gc, batch, length = attempts[-1]
            chosen = (precision, gc, batch, length, estimate(precision, gc, batch, length))
        precision, gc, batch, length, est = chosen
        fits = est["total_mb"] <= budget
        accumulation = max(1, effective // batch)
        words = {"bf16": "bf16", "fp16": "fp16", "4bit": "4-bit (QLoRA)"}[precision]
        parts = [f"{budget / 1024:.0f} GB free: {display} in {words}, {cfg['name']} preset, "
                 f"batch {batch} × accumulation {accumulation}"]
        if gc:
            parts.append("gradient checkpointing")
        if length < seq:
            parts.append(f"sequences cut to {length} tokens")
        reason = ", ".join(parts) + f"; estimated peak {est['total_mb'] / 1024:.1f} GB."
        if not fits:
            reason += (f" It does not fit: {display} needs about {est['total_mb'] / 1024:.1f} GB even in 4-bit "
                       "with batch 1; choose a smaller model.")
        return {
            "model": model, "preset": cfg["name"], "device": "cuda", "precision": precision,
            "bf16_autocast": False, "gradient_checkpointing": gc, "optim": optim,
            "per_device_train_batch_size": batch, "gradient_accumulation_steps": accumulation,
            "max_seq_len": length, "max_steps": int(cfg["max_steps"]), "lora_rank": rank,
            "lora_alpha": int(cfg["lora_alpha"]), "memory_estimate_mb": est, "budget_mb": budget,
            "fits": fits, "reason": reason, "learning_rate": float(cfg["learning_rate"]),
        }

    # -- helpers --------------------------------------------------------------------------------------
    def _unknown_model_config(self, model: str, cfg: dict[str, Any], vram: int, why: str) -> dict[str, Any]:
        """The preset as it is, when no architecture is known to estimate from (said in ``reason``)."""
        on_cuda = bool(vram and vram > 0 and not self.force_cpu)
        precision = ("bf16" if self._bf16_gpu() else "fp16") if on_cuda else "fp32"
        return {
            "model": model, "preset": cfg["name"], "device": "cuda" if on_cuda else "cpu", "precision": precision,
            "bf16_autocast": False, "gradient_checkpointing": on_cuda, "optim": "adamw_torch",
            "per_device_train_batch_size": int(cfg["per_device_train_batch_size"]),
            "gradient_accumulation_steps": int(cfg["gradient_accumulation_steps"]),
            "max_seq_len": int(cfg.get("max_seq_len", 512)), "max_steps": int(cfg["max_steps"]),
            "lora_rank": int(cfg["lora_rank"]), "lora_alpha": int(cfg["lora_alpha"]), "memory_estimate_mb": None,
            "budget_mb": int(vram or 0), "fits": True,
            "reason": f"{why} The {cfg['name']} preset is used as it is, with gradient checkpointing on a GPU.",
        }

    @staticmethod
    def _spec_or_path(model: str) -> Any:
        spec = find_spec(model)
        return spec if spec is not None else model

    @staticmethod
    def _display_name(model: str) -> str:
        spec = find_spec(model)
        names = {"tinyllama": "TinyLlama", "smollm2-135m": "SmolLM2-135M", "smollm2-360m": "SmolLM2-360M",
                 "smollm2-1.7b": "SmolLM2-1.7B", "qwen2.5-0.5b": "Qwen2.5-0.5B", "qwen2.5-1.5b": "Qwen2.5-1.5B",
                 "llama-3.2-1b": "Llama-3.2-1B", "llama-3.2-3b": "Llama-3.2-3B"}
        if spec is not None:
            return names.get(spec.name, spec.name)
        return Path(model).name or model

    @staticmethod
    def _spec_for(model_size: str) -> ModelSpec:
        """A registry model for a name, id, or a size like '1.1B' / '135M' (the closest in parameters)."""
        spec = find_spec(model_size)
        if spec is not None:
            return spec
        text = model_size.strip().upper()
        try:
            if text.endswith("B"):
                millions = float(text[:-1]) * 1000
            elif text.endswith("M"):
                millions = float(text[:-1])
            else:
                millions = float(text) / 1e6
        except ValueError:
            return MODELS["tinyllama"]
        return min(MODELS.values(), key=lambda s: abs(s.params_m - millions))
