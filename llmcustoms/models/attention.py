"""Attention over packed rows: SDPA once per packed example instead of one masked call per row.

Packed rows (``data/packing.py``) hold several examples whose positions restart at 0. Given no mask,
transformers turns those restarts into a block-diagonal causal mask and hands it to SDPA. On the
CPU that is slow twice over: with an explicit mask PyTorch's flash kernel cannot skip the causal
upper triangle, and it computes every masked-out block between examples as well, so a 512-token
row of 3 equal examples does ~6× the attention work it needs; attention was ~22 % of a LoRA step of
SmolLM2-135M (torch.profiler). ``packed_sdpa_attention`` instead runs SDPA once per example
(``is_causal``, no mask): the same numbers (bit for bit against each example alone), a fraction of
the work: +10 % real tokens/s in benchmarks/bench_train.py (195 → 215 on 2 cores). Anything it was
not built for (a padding mask, a KV cache, decoding) goes to transformers' own SDPA unchanged.

Nothing here imports torch or transformers at module import.
"""

from __future__ import annotations

#: The ``attn_implementation`` name under which the packed attention is registered.
PACKED_SDPA = "llmcustoms_packed_sdpa"


def _segments(positions: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive positions: a new example starts wherever they do not step by 1."""
    bounds = [0] + [i for i in range(1, len(positions)) if positions[i] != positions[i - 1] + 1] + [len(positions)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                          scaling: float | None = None, position_ids=None, **kwargs):
    """SDPA run per packed example (split where ``position_ids`` restart); transformers' SDPA otherwise.

    Same contract as ``transformers.integrations.sdpa_attention.sdpa_attention_forward``: query
    ``[batch, heads, q_len, dim]``, key/value ``[batch, kv_heads, kv_len, dim]``; returns
    ``([batch, q_len, heads, dim], None)``.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q_len, kv_len = query.shape[2], key.shape[2]
    if attention_mask is not None or position_ids is None or q_len != kv_len or q_len < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch = query.shape[0]
    if position_ids.shape[0] != batch:
        position_ids = position_ids.expand(batch, -1)
    rows = [_segments(row) for row in position_ids.tolist()]
    if all(len(segments) == 1 for segments in rows):  # nothing packed: one causal call for the whole batch
        return sdpa_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling, **kwargs)
    outputs = []
    for b, segments in enumerate(rows):
        parts = [sdpa_attention_forward(module, query[b:b + 1, :, s:e], key[b:b + 1, :, s:e], value[b:b + 1, :, s:e],
                                        None, dropout=dropout, scaling=scaling, **kwargs)[0]
                 for s, e in segments]
        outputs.append(torch.cat(parts, dim=1))
    return torch.cat(outputs, dim=0), None


def _packed_sdpa_mask(*args, attention_mask=None, q_offset=0, kv_offset=0, q_length=None, kv_length=None, **kwargs):
    """No mask for plain or packed training rows (the attention splits them); transformers' SDPA mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    if (attention_mask is None and not args and _is_zero(q_offset) and _is_zero(kv_offset)
            and q_length is not None and q_length == kv_length):
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, q_offset=q_offset, kv_offset=kv_offset, q_length=q_length,
                     kv_length=kv_length, **kwargs)


def _is_zero(value) -> bool:
    try:
        return int(value) == 0
    except (TypeError, ValueError):  # pragma: no cover - a symbolic offset under tracing
        return False


def register_packed_attention() -> str:
    """Register ``packed_sdpa_attention`` (and its mask rule) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_SDPA, _packed_sdpa_mask)
    return PACKED_SDPA


#: Architectures whose attention is plain causal self-attention through ``AttentionInterface``.
PACKED_ATTENTION_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


def packed_attention_supported(config) -> bool:
    """True for causal decoders whose every layer attends to the whole past (no sliding window, no softcap)."""
    if getattr(config, "model_type", None) not in PACKED_ATTENTION_MODEL_TYPES:
        return False
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True):
        return False
    layer_types = getattr(config, "layer_types", None) or []
    return all(kind == "full_attention" for kind in layer_types)


def use_packed_attention(model) -> bool:
    """Switch ``model`` to ``packed_sdpa_attention`` where its architecture allows; True when switched."""
    config = getattr(model, "config", None)
    if config is None or not packed_attention_supported(config):
        return False
    try:
        model.set_attn_implementation(register_packed_attention())
    except (ValueError, AttributeError, ImportError):  # an older transformers without the interface
        return False
    return getattr(model.config, "_attn_implementation", None) == PACKED_SDPA
