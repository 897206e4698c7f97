"""A merged Llama model written as GGUF with the ``gguf`` package alone (no converter, nothing to compile).

Tensor layout follows llama.cpp's ``convert_hf_to_gguf.py`` for ``LlamaForCausalLM``:
``token_embd``, ``blk.N.attn_{norm,q,k,v,output}``, ``blk.N.ffn_{norm,gate,up,down}``,
``output_norm`` and ``output`` (left out when the embeddings are tied). q_proj and k_proj rows are
permuted for llama.cpp's rotary embedding (k with the KV head count); readers undo it.
1-D tensors (norms) stay F32; matrices are F16, or Q8_0/Q5_1/Q5_0/Q4_1/Q4_0 (the ``gguf`` package's own
quantizers) when every row splits into 32-value blocks. K-quants need llama.cpp's quantizer (``gguf_kquant``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmcustoms.errors import InputError
from llmcustoms.export.gguf_vocab import GGUFVocab

# q5_0/q5_1 are not offered yet: read back by transformers they gave a 21 % logit error and +6-11 % perplexity
# on SmolLM2-135M where q4_1 gave 5 % and +0.3 % (a 5-bit file worse than a 4-bit one: to investigate).
QUANTS = ("f16", "q8_0", "q4_1", "q4_0")
#: Each quantization's GGML tensor type and llama.cpp file type (by name in the gguf package).
_TYPES = {"q8_0": ("Q8_0", "MOSTLY_Q8_0"), "q5_1": ("Q5_1", "MOSTLY_Q5_1"), "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
          "q4_1": ("Q4_1", "MOSTLY_Q4_1"), "q4_0": ("Q4_0", "MOSTLY_Q4_0")}
F16_MAX = 65504.0

#: Buffers a Llama checkpoint may hold that are not weights: never written.
_NOT_WRITTEN_SUFFIXES = ("rotary_emb.inv_freq",)


def gguf_tensor_name(hf_name: str, block_count: int) -> str | None:
    """The llama.cpp name of a Hugging Face Llama tensor; None for buffers that are not written.

    The names come from ``gguf``'s own table (``gguf.get_tensor_name_map``), the one llama.cpp's
    converter uses, so they follow the library rather than a copy of it.
    """
    if hf_name.endswith(_NOT_WRITTEN_SUFFIXES):
        return None
    name = _llama_name_map(block_count).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise InputError(f"GGUF export does not know where the tensor {hf_name!r} goes; export 'merged' instead.")
    return name


@functools.lru_cache(maxsize=4)
def _llama_name_map(block_count: int) -> Any:
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, block_count)


def permute_for_rope(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """llama.cpp's q/k row permutation (interleaved rotary halves), exactly as its converter does it."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def _config_value(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def llama_hparams(config: Any) -> dict[str, Any]:
    """The hyper-parameters GGUF stores under ``llama.*``, from a transformers LlamaConfig."""
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    head_dim = int(_config_value(config, "head_dim", default=hidden // heads))
    rope = _config_value(config, "rope_parameters", "rope_scaling", default={}) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return {
        "context_length": int(config.max_position_embeddings),
        "embedding_length": hidden,
        "block_count": int(config.num_hidden_layers),
        "feed_forward_length": int(config.intermediate_size),
        "head_count": heads,
        "head_count_kv": int(_config_value(config, "num_key_value_heads", default=heads)),
        "head_dim": head_dim,
        "rope_freq_base": float(theta if theta is not None else _config_value(config, "rope_theta", default=10000.0)),
        "rms_norm_eps": float(config.rms_norm_eps),
        "vocab_size": int(config.vocab_size),
        "tied": bool(_config_value(config, "tie_word_embeddings", default=False)),
    }


def iter_gguf_tensors(state_dict: dict[str, Any], hp: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """(llama.cpp name, float32 array) for every tensor to write, q/k permuted, tied output left out."""
    for hf_name, tensor in state_dict.items():
        name = gguf_tensor_name(hf_name, hp["block_count"])
        if name is None or (name == "output.weight" and hp["tied"]):
            continue
        data = tensor.detach().float().cpu().numpy()
        if name.endswith("attn_q.weight"):
            data = permute_for_rope(data, hp["head_count"], hp["head_count"])
        elif name.endswith("attn_k.weight"):
            data = permute_for_rope(data, hp["head_count"], hp["head_count_kv"])
        yield name, np.ascontiguousarray(data)


def encode_tensor(data: np.ndarray, quant: str, output: bool = False):
    """(array to write, raw GGML type or None): F32 for vectors, F16 or the ``quant`` type for matrices.

    ``output``: the tensor that makes the logits (``output.weight``, or ``token_embd.weight`` when the
    embeddings are tied). As llama.cpp does for its 4- and 5-bit types, it stays at 8 bits: the logits
    depend on it directly (on SmolLM2-135M, q5_1 everywhere gave a 25 % logit error).
    """
    import gguf

    if data.ndim <= 1 or not np.isfinite(data).all() or np.abs(data).max() > F16_MAX:
        return data.astype(np.float32), None  # vectors, and matrices half precision cannot hold
    if output and quant in _TYPES:
        quant = "q8_0"
    if quant in _TYPES:
        ggml_type = gguf.GGMLQuantizationType[_TYPES[quant][0]]
        if data.shape[-1] % gguf.GGML_QUANT_SIZES[ggml_type][0] == 0:
            return gguf.quants.quantize(data, ggml_type), ggml_type
    return data.astype(np.float16), None


def write_gguf(path: Path, model, vocab: GGUFVocab, quant: str, name: str, description: str = "",
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``model`` (a merged LlamaForCausalLM) and ``vocab`` to ``path``; returns what was written."""
    import gguf

    if quant not in QUANTS:
        raise InputError(f"Unknown GGUF quantization {quant!r}: use one of {', '.join(QUANTS)}.")
    hp = llama_hparams(model.config)
    if len(vocab.tokens) != hp["vocab_size"]:
        raise InputError(f"The vocabulary has {len(vocab.tokens)} tokens for {hp['vocab_size']} embedding rows.")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type("model")
    writer.add_name(name)
    if description:
        writer.add_description(description)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType[_TYPES[quant][1]])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(hp["context_length"])
    writer.add_embedding_length(hp["embedding_length"])
    writer.add_block_count(hp["block_count"])
    writer.add_feed_forward_length(hp["feed_forward_length"])
    writer.add_head_count(hp["head_count"])
    writer.add_head_count_kv(hp["head_count_kv"])
    writer.add_rope_dimension_count(hp["head_dim"])
    if hp["head_dim"] * hp["head_count"] != hp["embedding_length"]:
        writer.add_key_length(hp["head_dim"])
        writer.add_value_length(hp["head_dim"])
    writer.add_rope_freq_base(hp["rope_freq_base"])
    writer.add_layer_norm_rms_eps(hp["rms_norm_eps"])
    writer.add_vocab_size(hp["vocab_size"])
    vocab.add_to(writer)

    counts: dict[str, int] = {}
    state = model.state_dict()
    logits_tensor = "token_embd.weight" if hp["tied"] else "output.weight"
    for tensor_name, data in iter_gguf_tensors(state, hp):
        encoded, raw_type = encode_tensor(data, quant, output=tensor_name == logits_tensor)
        writer.add_tensor(tensor_name, encoded, raw_dtype=raw_type)
        kind = raw_type.name if raw_type is not None else ("F16" if encoded.dtype == np.float16 else "F32")
        counts[kind] = counts.get(kind, 0) + 1
    if progress:
        progress(f"Writing {sum(counts.values())} tensors to {path.name}…")
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return {"tensors": counts, "hparams": hp, "bytes": path.stat().st_size}
