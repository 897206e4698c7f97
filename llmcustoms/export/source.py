"""What an export starts from: a finished run, its adapter, its base model, and the checks on them.

Nothing here writes anything. The refusals are sentences a person can act on:
an unfinished run, a run without an adapter, a base model that is gone, an architecture the
GGUF writer cannot write.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcustoms.errors import DamagedRunError, InputError, ModelNotFoundError
from llmcustoms.models.loading import load_tokenizer as training_tokenizer
from llmcustoms.runs.rundir import RunDir
from llmcustoms.runs.status import run_state, unfinished_sentence

EXPORTABLE_STATUSES = ("done", "stopped")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class ExportSource:
    """A run ready to export: its directory, run.json, adapter folder and base model folder."""

    run: RunDir
    info: dict[str, Any]
    adapter_dir: Path
    model_path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The run's id (its directory name)."""
        return str(self.info.get("id") or self.run.id)

    @property
    def model_name(self) -> str:
        """The base model's name as the run recorded it."""
        return str(self.info.get("model") or (self.model_path.name if self.model_path else "model"))

    @property
    def tokenizer_dir(self) -> Path:
        """Where the tokenizer used in training lives: the adapter folder when it holds one, else the base."""
        if any((self.adapter_dir / name).is_file() for name in TOKENIZER_FILES):
            return self.adapter_dir
        assert self.model_path is not None
        return self.model_path


def open_run(run_ref: str | os.PathLike[str], runs_root: str | os.PathLike[str] | None = None) -> ExportSource:
    """The run at ``run_ref`` (a path or an id), refused unless it finished with an adapter."""

    run = RunDir.open(run_ref, root=runs_root)
    # The folder given is the truth: a copied or moved run exports its own adapter, never the path its
    # run.json recorded where it was trained.
    adapter_dir = run.adapter_dir
    has_adapter = (adapter_dir / "adapter_config.json").is_file() and any(adapter_dir.glob("adapter_model.*"))
    try:
        info = run.read()
    except DamagedRunError:
        if not has_adapter:
            raise
        info = {"status": "done", "damaged": True}  # run.json is gone bad, the adapter is intact: use it
    status = str(info.get("status", "unknown")) if info.get("damaged") else run_state(run, info)["status"]
    if status == "interrupted":
        raise InputError(f"Run {run.id} was interrupted before it finished (its process is gone): "
                         f"`llmcustoms resume {run.id}` continues it from its last checkpoint, then export.")
    if status in ("created", "running"):
        raise InputError(unfinished_sentence(run.id, status, "export"))
    if status not in EXPORTABLE_STATUSES:
        raise InputError(
            f"Run {run.id} did not finish (status {status!r}); only runs that are done or stopped with an "
            "adapter can be exported."
        )
    if not has_adapter:
        raise InputError(f"Run {run.id} has no adapter to export (looked in {adapter_dir}).")
    return ExportSource(run=run, info=info, adapter_dir=adapter_dir)


def attach_base_model(source: ExportSource, require_architecture: bool) -> ExportSource:
    """Fill in the base model folder and its config; refuse a missing one or, for GGUF, a foreign architecture."""
    raw = source.info.get("model_path")
    if not raw or not (Path(str(raw)).expanduser() / "config.json").is_file():
        # PEFT records the base model in the adapter itself (a damaged or moved run.json does not lose it).
        try:
            adapter_config = json.loads((source.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
            raw = adapter_config.get("base_model_name_or_path") or raw
        except (OSError, ValueError):
            pass
    if not raw:
        raise ModelNotFoundError(f"Run {source.run.id} does not record its base model (no model_path in run.json).")
    model_path = Path(str(raw)).expanduser()
    config_file = model_path / "config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(
            f"The base model of run {source.run.id} is no longer at {model_path}; download it again "
            f"(llmcustoms models) or restore that folder, then export."
        )
    source.model_path = model_path
    source.config = json.loads(config_file.read_text(encoding="utf-8"))
    if require_architecture:
        check_gguf_architecture(source.config, source.model_name)
    return source


def check_gguf_architecture(config: dict[str, Any], model_name: str) -> None:
    """InputError unless ``config`` is a plain Llama-family model the GGUF writer can write exactly."""
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    arch = str(architectures[0])
    if arch not in SUPPORTED_ARCHITECTURES:
        raise InputError(
            f"GGUF export supports Llama-family models (LlamaForCausalLM) only, and {model_name} is {arch}; "
            "export it as 'merged' and convert that with llama.cpp's convert_hf_to_gguf.py instead."
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise InputError(
            f"GGUF export does not write {rope_type!r} RoPE scaling yet ({model_name}); export it as 'merged' instead."
        )
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise InputError(f"GGUF export does not write Llama models with bias terms ({model_name}); export 'merged'.")
    if config.get("hidden_act", "silu") != "silu":
        raise InputError(f"GGUF export expects SiLU activations, and {model_name} uses {config.get('hidden_act')!r}.")


def _safetensors_elements(path: Path) -> int:
    """Number of tensor elements in one safetensors file, read from its header alone."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        total += count
    return total


def count_parameters(model_path: Path) -> int:
    """Parameters stored in a model folder's safetensors files (0 when it has none)."""
    return sum(_safetensors_elements(p) for p in sorted(model_path.glob("*.safetensors")))


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _dtype_bytes(config: dict[str, Any]) -> int:
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return 4 if "32" in dtype else 2


def estimate_bytes(source: ExportSource, fmt: str, quant: str) -> int:
    """A generous estimate of the disk space an export needs."""
    margin = 64 * 1024 * 1024
    if fmt == "adapter":
        return int(folder_bytes(source.adapter_dir) * 1.1) + margin
    assert source.model_path is not None
    params = count_parameters(source.model_path)
    if params == 0:  # weights in .bin files: fall back to the size on disk
        params = folder_bytes(source.model_path) // _dtype_bytes(source.config)
    per_param = {"merged": _dtype_bytes(source.config), "f16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32,
                 "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32,
                 # K-quants: the f16 file the quantizer reads, then its output
                 "q6_k": 2.0 + 6.56 / 8, "q5_k_m": 2.0 + 5.7 / 8, "q4_k_m": 2.0 + 4.9 / 8}
    bytes_per = per_param["merged"] if fmt == "merged" else per_param[quant]
    return int(params * bytes_per * 1.05) + margin


def torch_dtype_of(config: dict[str, Any]):
    """The torch dtype the base model was saved in (float32 when it does not say)."""
    import torch

    name = str(config.get("dtype") or config.get("torch_dtype") or "float32").replace("torch.", "")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name, torch.float32)


def load_tokenizer(source: ExportSource):
    """The tokenizer the run trained with: the adapter folder's copy when there is one, else the base's
    with the same pad-token and chat-template fallbacks training applies."""

    return training_tokenizer(str(source.tokenizer_dir))


def load_peft_model(source: ExportSource):
    """The base model in float32 on the CPU with the run's LoRA adapter applied (not merged)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert source.model_path is not None
    base = AutoModelForCausalLM.from_pretrained(source.model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, source.adapter_dir)
    model.eval()
    return model
