"""Base model + LoRA adapter merged into one standard transformers folder, and checked.

The merge happens in float32 on the CPU (exact up to rounding); the folder is saved in the base
model's own dtype with its tokenizer (the one the run trained with, chat template included) and
generation config, so plain ``AutoModelForCausalLM.from_pretrained(folder)`` loads it. The check
reloads the saved folder and compares its logits with base+adapter (not merged) on a fixed prompt.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmcustoms.export.source import ExportSource, load_peft_model, load_tokenizer, torch_dtype_of
from llmcustoms.export.verify import compare_logits, enforce, logits_for, verification_ids

Progress = Callable[[str], None]


def merged_model(source: ExportSource, progress: Progress, tokenizer=None, reference: bool = True):
    """(merged float32 model, tokenizer, logits of base+adapter (None unless ``reference``), verification ids)."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
    progress(f"Loading the base model from {source.model_path} and the adapter from {source.adapter_dir}…")
    peft_model = load_peft_model(source)
    ids = verification_ids(tokenizer)
    base_logits = logits_for(peft_model, ids) if reference else None
    progress("Merging the LoRA weights into the base model…")
    model = peft_model.merge_and_unload()
    model.eval()
    model.config.use_cache = True
    return model, tokenizer, base_logits, ids


def export_merged(source: ExportSource, folder: Path, progress: Progress) -> dict[str, Any]:
    """Write the merged model to ``folder`` and verify it; returns the verification numbers."""
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer, reference, ids = merged_model(source, progress)
    dtype = torch_dtype_of(source.config)
    dtype_name = str(dtype).replace("torch.", "")
    progress(f"Saving the merged model ({dtype_name}, safetensors) with its tokenizer…")
    model.to(dtype)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()

    progress("Verifying: reloading the merged folder and comparing logits with base + adapter…")
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded.eval()
    comparison = compare_logits(reference, logits_for(reloaded, ids))
    del reloaded
    gc.collect()
    enforce(comparison, f"merged-{dtype_name}", "the merged model")
    return {"comparison": comparison, "dtype": dtype_name}
