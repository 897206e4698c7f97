"""LLMCustoms: fine-tune a small chat model on a folder of text files.

Importing the package is cheap: the public names below load their modules (and torch) only when
first used, so ``import llmcustoms`` and the TUI's first screen stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FineTuner": "llmcustoms.core.fine_tuner",
    "HardwareDetector": "llmcustoms.hardware.detector",
    "ModelManager": "llmcustoms.models.manager",
    "Config": "llmcustoms.utils.config",
    "Logger": "llmcustoms.utils.logger",
    "ChatSession": "llmcustoms.chat.session",
    "TrainRequest": "llmcustoms.training.trainer",
    "run_training": "llmcustoms.training.trainer",
    "HIGHSPEED_CONFIG": "llmcustoms.planning.presets",
    "QUALITY_CONFIG": "llmcustoms.planning.presets",
    "BESTACCURACY_CONFIG": "llmcustoms.planning.presets",
    "LLMCustomsError": "llmcustoms.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmcustoms' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
