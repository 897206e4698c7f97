"""The three training presets: highspeed, quality and bestaccuracy.

``HIGHSPEED_CONFIG``, ``QUALITY_CONFIG`` and ``BESTACCURACY_CONFIG`` are public and stable, numbers
included (epochs, batch, accumulation, lr, max_steps, LoRA rank/alpha): scripts import them and compare
against them. Every other per-preset setting sits in ``PRESET_EXTRAS`` and is merged by ``get_preset``,
so the public dicts never change shape. Training is step-driven (``max_steps``, or on a CPU a budget
from the data); ``num_train_epochs`` stays in the public dicts for their readers but no run uses it.
"""

from __future__ import annotations

from typing import Any

from llmcustoms.errors import ConfigError
from llmcustoms.planning.budget import CPU_EPOCHS, CPU_MINUTES

HIGHSPEED_CONFIG = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-3,
    "max_steps": 100,
    "lora_rank": 4,
    "lora_alpha": 8,
}

QUALITY_CONFIG = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 4,
    "learning_rate": 5e-4,
    "max_steps": 300,
    "lora_rank": 8,
    "lora_alpha": 16,
}

BESTACCURACY_CONFIG = {
    "num_train_epochs": 5,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 8,
    "learning_rate": 2e-4,
    "max_steps": 1000,
    "lora_rank": 16,
    "lora_alpha": 32,
}

PRESETS: dict[str, dict[str, Any]] = {
    "highspeed": HIGHSPEED_CONFIG,
    "quality": QUALITY_CONFIG,
    "bestaccuracy": BESTACCURACY_CONFIG,
}

#: What each preset means, in words a person choosing one can use.
PRESET_DESCRIPTIONS = {
    "highspeed": "Fastest: a short run with a small adapter. Good for a first try or a 4 GB card.",
    "quality": "Balanced (default): a longer run with a medium adapter. Good for most folders.",
    "bestaccuracy": "Slowest: the longest run, a larger adapter and a gentle learning rate.",
}

#: Replay examples (the base model's own answers to everyday requests, ``training/replay.py``) per training
#: example of the folder: they keep what the model knew while it learns the folder (issue 22).
REPLAY_SHARE = 0.15

#: The rest of each preset's settings (kept out of the public dicts above).
PRESET_EXTRAS: dict[str, dict[str, Any]] = {
    "highspeed": {"max_seq_len": 512, "lora_dropout": 0.05, "warmup_ratio": 0.05, "save_steps": 50,
                  "eval_steps": 50, "qa_pairs_per_chunk": 3, "replay_share": REPLAY_SHARE},
    "quality": {"max_seq_len": 512, "lora_dropout": 0.05, "warmup_ratio": 0.05, "save_steps": 100,
                "eval_steps": 100, "qa_pairs_per_chunk": 5, "replay_share": REPLAY_SHARE},
    "bestaccuracy": {"max_seq_len": 1024, "lora_dropout": 0.05, "warmup_ratio": 0.05, "save_steps": 200,
                     "eval_steps": 200, "qa_pairs_per_chunk": 8, "replay_share": REPLAY_SHARE},
}

#: On a CPU a run should finish in minutes: shorter sequences, small batches; the number of steps comes
#: from the data and the measured speed (``planning/budget.py``), not from the preset.
CPU_LIMITS = {"max_seq_len": 256, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
#: On a CPU: at least this learning rate and LoRA width (few passes must teach facts).
CPU_KNOWLEDGE_FLOORS = {"learning_rate": 2e-3, "lora_rank": 16, "lora_alpha": 32}


def check_preset(name: str) -> str:
    """The preset name normalised; ConfigError naming the valid ones otherwise."""
    key = (name or "").strip().lower()
    if key not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    return key


def get_preset(name: str) -> dict[str, Any]:
    """A fresh copy of preset ``name``: its public dict with its ``PRESET_EXTRAS`` merged in."""
    key = check_preset(name)
    merged = dict(PRESETS[key])
    merged.update(PRESET_EXTRAS[key])
    merged["name"] = key
    return merged


def adapt_for_cpu(preset: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A copy of ``preset`` shrunk so that a CPU run ends in minutes, and a sentence saying what changed."""
    adapted = dict(preset)
    changes = []
    for key, limit in CPU_LIMITS.items():
        if adapted.get(key, 0) > limit:
            changes.append(f"{key} {adapted[key]}→{limit}")
            adapted[key] = limit
    # A CPU run makes few passes: a higher rate and a wider adapter make facts stick within them
    # (measured on examples/data: see benchmarks/RESULTS.md, "Knowledge").
    for key, floor in CPU_KNOWLEDGE_FLOORS.items():
        if float(adapted.get(key, 0)) < floor:
            changes.append(f"{key} {adapted.get(key)}→{floor:g}")
            adapted[key] = floor
    name = adapted.get("name", "quality")
    adapted.update(budget_by_data=True, budget_epochs=CPU_EPOCHS.get(name, 6.0),
                   budget_minutes=CPU_MINUTES.get(name, 10.0))
    for key in ("save_steps", "eval_steps"):
        adapted[key] = min(adapted.get(key, adapted["max_steps"]), adapted["max_steps"])
    note = (f"No GPU: training on the CPU. Steps are set by your data ({adapted['budget_epochs']:g} passes over "
            f"the examples, at most {adapted['budget_minutes']:g} min, measured on real steps)"
            + (f"; shortened: {', '.join(changes)}." if changes else "."))
    return adapted, note
