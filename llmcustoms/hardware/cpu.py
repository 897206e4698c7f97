"""What the CPU can do for training: native bf16 (from its flags, confirmed by a probe) and the thread count.

bf16 autocast roughly halves the cost of every matmul on CPUs with native bf16 instructions
(AVX512-BF16, AMX-BF16): measured ~1.5× on LoRA training of SmolLM2-135M on 2 cores. On a CPU
without them PyTorch emulates bf16 and it is *slower* than fp32, so the choice is made from the
CPU's flags and then confirmed by a tiny probe (a forward and backward under autocast compared
with fp32): a broken or emulated path falls back to fp32 instead of training slowly or wrongly.

Threads: PyTorch sizes its pool from the cores it can see, which in a container with a CPU quota
(``docker --cpus 2`` on a 64-core host) is the host's: 64 threads fighting over 2 CPUs is many
times slower than 2. ``choose_torch_threads`` counts what the process may really use: its CPU
affinity, the cgroup quota, and physical rather than SMT siblings (GEMM gains nothing from them).

Nothing here imports torch at module import; the probe imports it when called.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

#: CPU flags (Linux /proc/cpuinfo names) that mean native bf16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

#: The probe's tolerance: bf16 keeps 8 bits of mantissa, so a 64-wide dot product is within ~1 %.
PROBE_RTOL = 3e-2


@dataclass(frozen=True)
class CpuPrecision:
    """The precision chosen for CPU training and why, in a sentence for the run's notes."""

    bf16_autocast: bool
    reason: str


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo, or '' where there is none (macOS, Windows, sandboxes)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo text (the first 'flags' line; all cores share them)."""
    text = read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 says 'flags', ARM says 'Features'
            return set(value.split())
    return set()


def cpu_has_native_bf16(cpuinfo_text: str | None = None) -> bool:
    """True when the CPU advertises native bf16 instructions (AVX512-BF16 or AMX-BF16)."""
    return bool(cpu_flags(cpuinfo_text) & BF16_FLAGS)


def bf16_autocast_probe() -> bool:
    """True when a small Linear's forward and backward under CPU bf16 autocast run and match fp32.

    Takes a few milliseconds. Catches a PyTorch build without the bf16 CPU kernels, or one that
    silently computes garbage, before a whole training run depends on it.
    """
    try:
        import torch

        generator = torch.Generator().manual_seed(0)
        x = torch.randn(32, 64, generator=generator)
        weight = torch.randn(48, 64, generator=generator, requires_grad=True)
        reference = x @ weight.t()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.nn.functional.linear(x, weight)
        if out.dtype != torch.bfloat16:
            return False
        out.float().sum().backward()
        grad = weight.grad
        if grad is None or not bool(torch.isfinite(grad).all()):
            return False
        scale = float(reference.detach().abs().max())
        return float((out.detach().float() - reference.detach()).abs().max()) <= PROBE_RTOL * scale
    except Exception:  # noqa: BLE001 - any failure means "do not use bf16 here"
        return False


def choose_cpu_precision(cpuinfo_text: str | None = None, probe=bf16_autocast_probe) -> CpuPrecision:
    """bf16 autocast when the CPU has native bf16 and the probe passes; fp32 otherwise, with the reason.

    ``cpuinfo_text`` and ``probe`` are injectable so tests can describe any CPU.
    """
    if os.environ.get("LLMCUSTOMS_CPU_BF16", "").lower() in ("0", "false", "no", "off"):
        return CpuPrecision(False, "bf16 autocast switched off by LLMCUSTOMS_CPU_BF16; training in fp32.")
    if not cpu_has_native_bf16(cpuinfo_text):
        return CpuPrecision(False, "This CPU has no native bf16 (avx512_bf16/amx_bf16): training in fp32 "
                                   "(emulated bf16 would be slower).")
    if not probe():
        return CpuPrecision(False, "The CPU advertises bf16 but PyTorch's bf16 autocast failed a quick check: "
                                   "training in fp32.")
    return CpuPrecision(True, "The CPU has native bf16: training with bf16 autocast (about 1.5× faster than fp32).")


@functools.lru_cache(maxsize=1)
def cpu_bf16_autocast_ok() -> bool:
    """``choose_cpu_precision().bf16_autocast`` for this machine, worked out once per process."""
    return choose_cpu_precision().bf16_autocast


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), None when unlimited."""
    base = Path(root)
    try:
        fields = (base / "cpu.max").read_text().split()
        if fields and fields[0] != "max":
            return int(fields[0]) / int(fields[1])
        if fields:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def usable_cpus() -> int:
    """Logical CPUs this process may really use: its affinity mask, capped by the cgroup CPU quota."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None and quota > 0:
        usable = min(usable, max(1, math.ceil(quota)))
    return max(1, usable)


def choose_torch_threads(affinity: int | None = None, logical: int | None = None, physical: int | None = None,
                         quota: float | None = -1.0) -> int:
    """Intra-op threads for torch: the CPUs this process may use, counting physical cores only.

    Args:
        affinity: CPUs in the process's affinity mask (default: ``os.sched_getaffinity``).
        logical: logical CPUs of the machine (default: ``os.cpu_count()``).
        physical: physical cores (default: psutil's count, else ``logical``).
        quota: CPUs allowed by the cgroup quota; -1 reads it, None means unlimited.
    Returns:
        A count in ``[1, affinity]``.
    """
    if logical is None:
        logical = os.cpu_count() or 1
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not on Linux
            affinity = logical
    if physical is None:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False) or logical
        except ImportError:  # pragma: no cover - psutil is a dependency
            physical = logical
    if quota == -1.0:
        quota = cgroup_cpu_limit()
    usable = max(1, affinity)
    if quota is not None and quota > 0:
        usable = min(usable, max(1, math.ceil(quota)))
    # SMT siblings share one core's vector units: GEMM threads beyond the physical cores only contend.
    smt = max(1, round(logical / max(1, physical)))
    return max(1, min(usable, math.ceil(usable / smt)))


def apply_torch_threads(threads: int | None = None) -> int:
    """Lower torch's intra-op thread count to ``choose_torch_threads()`` when it is above it; returns it.

    Only lowers: torch's own default is right on an ordinary machine, and wrong (far too high) in a
    container with a CPU quota. ``LLMCUSTOMS_THREADS`` overrides the choice.
    """
    import torch

    override = os.environ.get("LLMCUSTOMS_THREADS", "").strip()
    if override.isdigit() and int(override) > 0:
        wanted = int(override)
        torch.set_num_threads(wanted)
        return wanted
    wanted = threads or choose_torch_threads()
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


def settle_cpu_training(train_config: dict) -> dict:
    """``train_config`` as it will really run on this CPU: torch threads capped, bf16 only where it works.

    Call it once before loading a model for CPU training (``models.loading`` takes the result as
    settled): the torch thread pool is sized to the CPUs this process may use, and the plan's
    ``bf16_autocast`` survives only when ``cpu_bf16_autocast_ok`` confirms it. Other devices: unchanged.
    """
    if train_config.get("device", "cpu") != "cpu":
        return train_config
    apply_torch_threads()
    settled = dict(train_config)
    settled["bf16_autocast"] = bool(train_config.get("bf16_autocast")) and cpu_bf16_autocast_ok()
    return settled
