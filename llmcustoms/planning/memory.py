"""How much memory a LoRA training run needs, estimated from the model's architecture.

Every recommendation LLMCustoms makes (precision, gradient checkpointing, micro-batch, sequence
length, which model) comes from :func:`estimate_training_memory`, not from a lookup table.

The estimate is built from first principles, per part:

* **weights** at the load precision. 4-bit NF4 (bitsandbytes, double quantization) stores every
  linear projection in 0.5 byte a parameter plus its quantization constants (one 8-bit absmax per
  64 weights, one fp32 constant per 256 of those); embeddings, lm_head and norms stay 16-bit.
* **LoRA** parameters (rank r on every linear projection: r × (in + out) each), kept in fp32 by PEFT,
  their **gradients** (fp32) and the **optimizer** state (AdamW: two fp32 moments; 8-bit AdamW: two bytes).
* **activations** saved for backward, per token and layer (see :func:`_layer_activation_bytes`), all
  layers without gradient checkpointing, or the layer inputs plus one recomputed layer with it.
* **logits**: batch × seq × vocab in 16 bit, their fp32 copy for the loss, log-softmax output and its
  gradient. With a 32 000-word vocabulary this is ~380 kB a token and often the largest single part.
* **CUDA context** (not visible to PyTorch's allocator) and the **allocator's** overhead.

The tensor parts, from first principles alone, matched ``torch.cuda.max_memory_allocated`` within
~3 % on a real GPU; the allocator and context constants below were then fitted to
``torch.cuda.max_memory_reserved`` by ``benchmarks/gpu_check.sh`` (see ``benchmarks/RESULTS.md``).
This module imports no torch.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmcustoms.models.registry import find_spec

MB = 1024 * 1024

#: Memory the CUDA driver and runtime take per process, outside PyTorch's allocator. Measured on an
#: H200 with CUDA 13: 618 MB at init, 684 after cuBLAS, 770 with bitsandbytes' kernels loaded (smaller
#: cards take less; the larger figure keeps small-card advice on the safe side).
CUDA_CONTEXT_MB = 770
#: Memory a CPU training process takes besides the tensors (Python, torch, transformers; measured RSS).
CPU_RUNTIME_MB = 600
#: The caching allocator rounds and fragments: reserved ≈ allocated × (1 + this) + the transient
#: buffers (the logits' backward above all) × ALLOCATOR_TRANSIENT_FACTOR, because big short-lived
#: blocks stay cached and split. Fitted on 30 measured cases (H200, TinyLlama's architecture, bf16 and
#: 4-bit, 512–4096 tokens a micro-batch, with and without checkpointing): largest error 3.7 %.
ALLOCATOR_FACTOR = 1.04
ALLOCATOR_TRANSIENT_FACTOR = 0.4
ALLOCATOR_FIXED_MB = 0
#: Part of a budget the recommender fills at most, leaving room for the estimate's error.
SAFETY = 0.9

PRECISIONS = ("fp32", "bf16", "fp16", "4bit")
OPTIMIZERS = {"adamw_torch": 8.0, "adamw_torch_fused": 8.0, "adamw_bnb_8bit": 2.0, "paged_adamw_8bit": 2.0,
              "adamw_8bit": 2.0, "sgd": 0.0}


@dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only transformer that memory depends on."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    name: str = "model"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear projection in one layer: q, k, v, o, gate, up, down."""
        h, kv, inter = self.hidden_size, self.kv_dim, self.intermediate_size
        return [(h, h), (h, kv), (h, kv), (h, h), (h, inter), (h, inter), (inter, h)]

    @property
    def linear_params(self) -> int:
        """Parameters in the layers' linear projections (what 4-bit quantizes)."""
        return self.num_layers * sum(i * o for i, o in self.linear_shapes())

    @property
    def embedding_params(self) -> int:
        """Input embeddings plus lm_head (counted once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def norm_params(self) -> int:
        return (2 * self.num_layers + 1) * self.hidden_size

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embedding_params + self.norm_params

    def lora_params(self, rank: int) -> int:
        """LoRA parameters with rank ``rank`` on every linear projection."""
        return self.num_layers * sum(rank * (i + o) for i, o in self.linear_shapes())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arch_from_spec(spec: Any) -> Arch:
    """An :class:`Arch` from a registry ``ModelSpec`` (or anything with the same attributes)."""
    return Arch(spec.hidden_size, spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.intermediate_size,
                spec.vocab_size, bool(spec.tied_embeddings), name=getattr(spec, "name", "model"))


def arch_from_config(config: dict[str, Any], name: str = "model") -> Arch:
    """An :class:`Arch` from a transformers ``config.json`` dict (Llama, Qwen2, Mistral, … style keys)."""
    hidden = int(config["hidden_size"])
    heads = int(config.get("num_attention_heads", max(1, hidden // 64)))
    return Arch(
        hidden_size=hidden,
        num_layers=int(config["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(config.get("num_key_value_heads") or heads),
        intermediate_size=int(config.get("intermediate_size") or 4 * hidden),
        vocab_size=int(config["vocab_size"]),
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        name=name,
    )


def resolve_arch(spec_or_arch: Any) -> Arch:
    """An :class:`Arch` from an Arch, a ModelSpec, a config dict, a registry name or a model folder.

    Raises ValueError with a sentence when nothing usable is found.
    """
    if isinstance(spec_or_arch, Arch):
        return spec_or_arch
    if isinstance(spec_or_arch, dict):
        return arch_from_config(spec_or_arch)
    if hasattr(spec_or_arch, "hidden_size") and hasattr(spec_or_arch, "num_layers"):
        return arch_from_spec(spec_or_arch)
    if isinstance(spec_or_arch, (str, os.PathLike)):
        spec = find_spec(str(spec_or_arch))
        if spec is not None:
            return arch_from_spec(spec)
        config_file = Path(spec_or_arch).expanduser() / "config.json"
        if config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
            config = config.get("text_config", config)  # multimodal wrappers keep the LM's numbers inside
            return arch_from_config(config, name=Path(spec_or_arch).name)
    raise ValueError(f"No architecture known for {spec_or_arch!r}: name a registry model or a folder with config.json.")


def _layer_activation_bytes(arch: Arch, act_bytes: int, lora_dropout: bool, lora_on: bool = True) -> float:
    """Bytes one decoder layer saves for backward, per token, with frozen base weights.

    Frozen linear layers save no input (autograd saves an input only when the weight needs a
    gradient; bitsandbytes' 4-bit matmul likewise), so what stays is, per layer:

    * two RMSNorms, which upcast their input to fp32 and keep it: 2 × 4h;
    * attention: q, k, v after RoPE and the output (flash/efficient SDPA keeps those, plus a
      logsumexp in fp32 per head): (2h + 2kv)·a + 4·heads;
    * the MLP: SiLU's input, its output and the up projection, all kept for the product: 3I·a;
    * LoRA: each adapted projection runs its own dropout on its own copy of the input, keeping the
      mask (1 byte) and the 16-bit copy the LoRA matmul saves: (6h + I)·(1 + a), or (6h + I)·a
      without dropout. This part alone is about a third of the total.
    """
    h, kv, inter = arch.hidden_size, arch.kv_dim, arch.intermediate_size
    norms = 2 * 4 * h
    attention = (2 * h + 2 * kv) * act_bytes + 4 * arch.num_heads
    mlp = 3 * inter * act_bytes
    lora = (6 * h + inter) * ((1 if lora_dropout else 0) + act_bytes) if lora_on else 0
    return norms + attention + mlp + lora


def _weight_bytes(arch: Arch, precision: str) -> float:
    """Bytes of the frozen base model's weights at ``precision``."""
    others = arch.embedding_params + arch.norm_params
    if precision == "fp32":
        return 4.0 * arch.total_params
    if precision in ("bf16", "fp16"):
        return 2.0 * arch.total_params
    # NF4 with double quantization: 4 bits + an 8-bit absmax per 64 weights + fp32 per 256 absmaxes.
    nf4 = 0.5 + 1.0 / 64 + 4.0 / (64 * 256)
    return nf4 * arch.linear_params + 2.0 * others


def estimate_training_memory(
    spec_or_arch: Any,
    precision: str = "bf16",
    batch_size: int = 1,
    seq_len: int = 512,
    lora_rank: int = 8,
    gradient_checkpointing: bool = False,
    optim: str = "adamw_torch",
    device: str | None = None,
    lora_dropout: bool = True,
    autocast_bf16: bool = False,
) -> dict[str, Any]:
    """The memory a LoRA training step needs, in MB, by part, with ``total_mb``.

    ``precision`` is the base weights' ('fp32', 'bf16', 'fp16' or '4bit'); ``device`` defaults to
    'cpu' for fp32 and 'cuda' otherwise. On CUDA ``allocator_peak_mb`` is what
    ``torch.cuda.max_memory_reserved`` should read; ``total_mb`` adds the CUDA context, i.e. what
    the card must have free. On the CPU ``total_mb`` is the process's resident memory.
    ``autocast_bf16`` (CPU only) counts activations at 2 bytes.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    arch = resolve_arch(spec_or_arch)
    device = device or ("cpu" if precision == "fp32" else "cuda")
    batch_size, seq_len, lora_rank = max(1, int(batch_size)), max(1, int(seq_len)), max(0, int(lora_rank))
    tokens = batch_size * seq_len
    on_cuda = device == "cuda"

    # Activations are 16-bit under CUDA training (bf16 weights or autocast) and CPU bf16 autocast.
    act_bytes = 4 if (precision == "fp32" and not autocast_bf16) else 2

    weights = _weight_bytes(arch, precision)
    lora = arch.lora_params(lora_rank)
    lora_weights = 4.0 * lora  # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype)
    gradients = 4.0 * lora
    optimizer = OPTIMIZERS.get(optim, 8.0) * lora

    per_layer = _layer_activation_bytes(arch, act_bytes, lora_dropout, lora_rank > 0)
    layer_input = arch.hidden_size * act_bytes
    final_norm = 4 * arch.hidden_size
    saved: float
    recompute: float
    if gradient_checkpointing:
        # Each layer keeps only its input; backward recomputes one layer at a time, whose saved tensors
        # plus the gradients flowing through it (about two hidden-sized and two intermediate-sized
        # tensors) are alive together.
        saved = arch.num_layers * layer_input + final_norm
        recompute = per_layer + (2 * arch.hidden_size + 2 * arch.intermediate_size) * act_bytes
    else:
        saved = arch.num_layers * per_layer + final_norm
        recompute = 0.0
    # Logits: the loss upcasts them to fp32 and log-softmax keeps its fp32 output; in backward the
    # gradients of log-softmax's output and input (fp32 each) join it: 12 bytes a token and word, the
    # peak (the 16-bit logits themselves are dropped before backward, forward peaks at 10).
    logits_bytes = 12 * arch.vocab_size
    logits = tokens * logits_bytes
    # Peak: everything saved + the larger of the logits' backward and one recomputed layer.
    activations = tokens * saved
    transient = max(logits, tokens * recompute)
    if precision == "4bit":
        # bitsandbytes dequantizes one weight at a time to 16 bit, forward and backward.
        transient += 2 * 2.0 * max(i * o for i, o in arch.linear_shapes())

    tensors = weights + lora_weights + gradients + optimizer + activations + transient
    if on_cuda:
        allocator = tensors * (ALLOCATOR_FACTOR - 1) + transient * ALLOCATOR_TRANSIENT_FACTOR + ALLOCATOR_FIXED_MB * MB
        runtime = CUDA_CONTEXT_MB * MB
    else:
        allocator = 0.0
        runtime = CPU_RUNTIME_MB * MB
    allocator_peak = tensors + allocator
    total = allocator_peak + runtime

    def mb(value: float) -> int:
        return int(math.ceil(value / MB))

    return {
        "weights_mb": mb(weights),
        "lora_params_mb": mb(lora_weights),
        "gradients_mb": mb(gradients),
        "optimizer_mb": mb(optimizer),
        "activations_mb": mb(activations),
        "logits_mb": mb(logits),
        "transient_mb": mb(transient),
        "cuda_context_mb" if on_cuda else "runtime_mb": mb(runtime),
        "allocator_overhead_mb": mb(allocator),
        "allocator_peak_mb": mb(allocator_peak),
        "total_mb": mb(total),
        "lora_params": lora,
        "model_params": arch.total_params,
        "num_layers": arch.num_layers,
        "tokens_per_micro_batch": tokens,
        "precision": precision,
        "device": device,
    }


def allocator_cap_fraction(max_vram_gb: float, device_total_mb: float) -> float:
    """The fraction for ``torch.cuda.set_per_process_memory_fraction`` that makes a big card act like one
    of ``max_vram_gb``: the card's memory less the CUDA context, which lives outside the allocator."""
    usable = max_vram_gb * 1024 - CUDA_CONTEXT_MB
    return max(0.01, min(1.0, usable / float(device_total_mb)))
