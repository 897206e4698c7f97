"""The training configuration: the ~20 keys a plan recommends and the trainer merges, typed.

``HardwareDetector.get_training_config`` and ``trainer.resolve_train_config`` build it as a dict (the
seed's API, and the ``config`` written to run.json); ``TrainConfig.from_dict`` is the typed view of that
dict, and ``to_dict()`` gives back the same keys in the same order (keys it has no field for are kept in
``extra``), so a round trip is byte-for-byte the same JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """What a run trains with: device and precision, batch and sequence, steps, LoRA, the memory verdict."""

    model: str | None = None
    preset: str | None = None
    device: str = "cpu"
    precision: str = "fp32"  # 'fp32' | 'bf16' | 'fp16' | '4bit'
    bf16_autocast: bool = False
    gradient_checkpointing: bool = False
    optim: str = "adamw_torch"
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_seq_len: int = 512
    max_steps: int = 0
    lora_rank: int = 8
    lora_alpha: int = 16
    memory_estimate_mb: dict[str, Any] | None = None  # the estimate's parts and total_mb; None: unknown model
    budget_mb: int = 0
    fits: bool = True
    reason: str = ""
    cpu_note: str | None = None
    learning_rate: float | None = None  # None: the preset's (a plan made before this key existed)
    #: On a CPU the steps come from the data and a time cap (``planning/budget.py``), not from ``max_steps``.
    budget_by_data: bool = False
    budget_minutes: float | None = None
    #: Every other key (the preset's learning_rate, save_steps, …, health_* overrides), as given.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The keys of the dict this was read from, in order (to_dict keeps it).
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrainConfig:
        """The typed view of a configuration dict (missing keys take the defaults above)."""
        names = {f.name for f in fields(cls)} - {"extra", "keys"}
        known = {k: copy.deepcopy(v) for k, v in config.items() if k in names}
        extra = {k: copy.deepcopy(v) for k, v in config.items() if k not in names}
        return cls(**known, extra=extra, keys=tuple(config))

    def to_dict(self) -> dict[str, Any]:
        """The configuration dict: the keys read (in their order), then any field set since."""
        names = [f.name for f in fields(self) if f.name not in ("extra", "keys")]
        present = set(self.keys) if self.keys else set(names) | set(self.extra)
        out: dict[str, Any] = {}
        for key in self.keys or tuple(names) + tuple(self.extra):
            if key in present:
                out[key] = copy.deepcopy(self.extra[key] if key in self.extra else getattr(self, key))
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """A key as the dict has it (for code that reads the dict's keys)."""
        return self.to_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        """``config[key]`` as on the dict (KeyError for a key it does not have)."""
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    @property
    def effective_batch(self) -> int:
        """Sequences per optimizer step (micro-batch × accumulation)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps
