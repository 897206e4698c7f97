"""Runs with a LoRA adapter for the export tests, and reading a GGUF file's metadata back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcustoms.runs.rundir import RunDir

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_run(model_dir: Path, root: Path, status: str = "done", adapter: bool = True, seed: int = 1) -> RunDir:
    """A run on ``model_dir`` with a LoRA adapter whose lora_B weights are small random values."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = RunDir.create(model_dir.name, root=root, status=status, model_path=str(model_dir))
    if adapter:
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=PROJECTIONS))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
        model.save_pretrained(run.adapter_dir)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(run.adapter_dir)
        run.update(adapter_path=str(run.adapter_dir))
    return run


def gguf_metadata(path: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    from transformers.integrations.gguf.reader import read_gguf_metadata

    return read_gguf_metadata(str(path), ("tokenizer.ggml.tokens",))
