"""The causal-LM loss computed from the logits of learnt positions only.

A chat example's prompt tokens carry the label -100: the model is not taught to predict them, yet
the usual forward projects every position onto the whole vocabulary (hidden × 49,152 for SmolLM2)
and the loss then throws most of those logits away. transformers' causal LMs accept
``logits_to_keep`` as a tensor of positions, so the model is asked for the positions whose *next*
token is learnt (in any row of the batch) and the cross-entropy is taken there. The result is
the model's own loss (``ForCausalLMLoss``: fp32 logits, labels shifted by one, summed and divided
by ``num_items_in_batch`` when the Trainer gives it, else the mean), as the tests check, in value
and in gradient.
"""

from __future__ import annotations

import inspect
from typing import Any

IGNORE_INDEX = -100


def _causal_lm(model: Any) -> Any:
    """The transformers model under PEFT / DDP / FSDP wrappers."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif hasattr(inner, "module"):
            inner = inner.module
        else:
            break
    return inner


def supports_answer_only_logits(model: Any) -> bool:
    """True when the model's forward takes ``logits_to_keep`` (every recent transformers causal LM)."""
    try:
        return "logits_to_keep" in inspect.signature(_causal_lm(model).forward).parameters
    except (TypeError, ValueError):
        return False


def answer_only_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """The mean (or ``num_items_in_batch``-normalised sum) next-token loss over the learnt tokens."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    # Position t predicts token t + 1: the target of the last position is nothing.
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = targets.ne(IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    if keep.numel() == 0:
        keep = keep.new_zeros(1)  # nothing to learn in this batch: one position keeps the graph whole
    forward = {name: value for name, value in inputs.items() if name != "labels"}
    logits = model(**forward, logits_to_keep=keep, use_cache=False).logits
    picked = targets[:, keep]
    loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), picked.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    if num_items_in_batch is None:
        return loss / picked.ne(IGNORE_INDEX).sum().clamp(min=1)
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch
