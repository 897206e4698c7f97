"""The hardware report: what ``HardwareDetector`` finds on this machine, as a typed, frozen value.

``HardwareReport.to_dict()`` is the JSON-ready dict ``HardwareDetector.detect()`` returns (the same keys
in the same order, so ``llmcustoms hardware --json`` and the TUI's probe read the same bytes as before);
``from_dict`` reads one back (a child process's report, or a partial one a test or a "what if" plan
passes: missing keys take the defaults below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: its index and name, memory in MB, and what PyTorch says of it (None: not known)."""

    index: int = 0
    name: str = ""
    total_mb: int = 0
    free_mb: int = 0
    used_mb: int = 0
    compute_capability: str | None = None
    bf16_supported: bool | None = None
    memory_source: str | None = None  # 'nvml' | 'torch'

    def to_dict(self) -> dict[str, Any]:
        """The dict ``detect()`` lists under ``gpus`` (facts not known are left out)."""
        out: dict[str, Any] = {"index": self.index, "name": self.name}
        if self.compute_capability is not None:
            out["compute_capability"] = self.compute_capability
        if self.bf16_supported is not None:
            out["bf16_supported"] = self.bf16_supported
        out.update({"total_mb": self.total_mb, "free_mb": self.free_mb, "used_mb": self.used_mb})
        if self.memory_source is not None:
            out["memory_source"] = self.memory_source
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuInfo:
        bf16 = data.get("bf16_supported")
        return cls(index=_int(data.get("index")), name=str(data.get("name") or ""),
                   total_mb=_int(data.get("total_mb")), free_mb=_int(data.get("free_mb")),
                   used_mb=_int(data.get("used_mb")), compute_capability=_opt_str(data.get("compute_capability")),
                   bf16_supported=None if bf16 is None else bool(bf16),
                   memory_source=_opt_str(data.get("memory_source")))


@dataclass(frozen=True)
class HardwareReport:
    """What this machine has and what it allows (see docs/CONTRACTS.md, "Hardware")."""

    device: str = "cpu"  # 'cpu' | 'cuda': where training runs
    gpus: tuple[GpuInfo, ...] = ()
    usable_vram_mb: int = 0  # the first GPU's free memory, capped by MAX_VRAM_GB; 0 on the CPU
    max_vram_gb: float | None = None
    force_cpu: bool = False
    cpu_count: int = 1
    cpu_physical_cores: int = 1
    cpu_name: str = ""
    cpu_bf16: bool = False
    ram_total_mb: int = 0
    ram_available_mb: int = 0
    disk_free_mb: int = 0
    cache_dir: str = ""
    torch_version: str | None = None
    cuda_available: bool = False
    cuda_version: str | None = None
    nvml_available: bool = False
    driver_version: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def first_gpu(self) -> GpuInfo | None:
        return self.gpus[0] if self.gpus else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict ``HardwareDetector.detect()`` returns."""
        return {
            "device": self.device,
            "gpus": [gpu.to_dict() for gpu in self.gpus],
            "usable_vram_mb": self.usable_vram_mb,
            "max_vram_gb": self.max_vram_gb,
            "force_cpu": self.force_cpu,
            "cpu_count": self.cpu_count,
            "cpu_physical_cores": self.cpu_physical_cores,
            "cpu_name": self.cpu_name,
            "cpu_bf16": self.cpu_bf16,
            "ram_total_mb": self.ram_total_mb,
            "ram_available_mb": self.ram_available_mb,
            "disk_free_mb": self.disk_free_mb,
            "cache_dir": self.cache_dir,
            "torch_version": self.torch_version,
            "cuda_available": self.cuda_available,
            "cuda_version": self.cuda_version,
            "nvml_available": self.nvml_available,
            "driver_version": self.driver_version,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareReport:
        """A report from a ``detect()``-shaped dict; missing keys take the defaults, unknown ones are ignored."""
        vram_cap = data.get("max_vram_gb")
        return cls(
            device=str(data.get("device") or "cpu"),
            gpus=tuple(GpuInfo.from_dict(gpu) for gpu in data.get("gpus") or ()),
            usable_vram_mb=_int(data.get("usable_vram_mb")),
            max_vram_gb=None if vram_cap is None else float(vram_cap),
            force_cpu=bool(data.get("force_cpu", False)),
            cpu_count=_int(data.get("cpu_count"), 1),
            cpu_physical_cores=_int(data.get("cpu_physical_cores"), _int(data.get("cpu_count"), 1)),
            cpu_name=str(data.get("cpu_name") or ""),
            cpu_bf16=bool(data.get("cpu_bf16", False)),
            ram_total_mb=_int(data.get("ram_total_mb")),
            ram_available_mb=_int(data.get("ram_available_mb")),
            disk_free_mb=_int(data.get("disk_free_mb")),
            cache_dir=str(data.get("cache_dir") or ""),
            torch_version=_opt_str(data.get("torch_version")),
            cuda_available=bool(data.get("cuda_available", False)),
            cuda_version=_opt_str(data.get("cuda_version")),
            nvml_available=bool(data.get("nvml_available", False)),
            driver_version=_opt_str(data.get("driver_version")),
            warnings=tuple(str(w) for w in data.get("warnings") or ()),
        )
