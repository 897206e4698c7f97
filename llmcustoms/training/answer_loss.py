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


def answer_only_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None,
                     compute_dtype: Any = None) -> Any:
    """The mean (or ``num_items_in_batch``-normalised sum) next-token loss over the learnt tokens.

    On the CPU, with a plain bias-free frozen output layer, the loss is ``fused_linear_cross_entropy``
    over exactly the learnt (row, position) pairs; ``compute_dtype`` is the dtype the output
    projection runs in (bf16 under bf16 autocast; the Trainer knows, the loss is computed outside the
    model's autocast). Elsewhere the model is asked for logits at the positions learnt in any row.
    """
    import torch.nn.functional as F

    labels = inputs["labels"]
    # Position t predicts token t + 1: the target of the last position is nothing.
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    forward = {name: value for name, value in inputs.items() if name != "labels"}
    head = _fusable_output_layer(model, labels)
    if head is not None:
        # One position per row for the logits the model insists on making; the loss reads the final hidden states.
        outputs = model(**forward, logits_to_keep=1, use_cache=False, output_hidden_states=True)
        hidden = outputs.hidden_states[-1]
        learnt = targets.ne(IGNORE_INDEX)
        loss = fused_linear_cross_entropy(hidden[learnt], head.weight, targets[learnt],
                                          compute_dtype or head.weight.dtype)
        count = learnt.sum()
    else:
        keep = targets.ne(IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
        if keep.numel() == 0:
            keep = keep.new_zeros(1)  # nothing to learn in this batch: one position keeps the graph whole
        logits = model(**forward, logits_to_keep=keep, use_cache=False).logits
        picked = targets[:, keep]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), picked.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction="sum")
        count = picked.ne(IGNORE_INDEX).sum()
    if num_items_in_batch is None:
        return loss / count.clamp(min=1)
    if hasattr(num_items_in_batch, "to"):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def _fusable_output_layer(model: Any, labels: Any) -> Any:
    """The output ``nn.Linear`` when the fused loss applies (CPU, no bias, frozen, hidden states on offer), else None."""
    import torch

    if labels.device.type != "cpu":
        return None
    inner = _causal_lm(model)
    try:
        head = inner.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if type(head) is not torch.nn.Linear or head.bias is not None or head.weight.requires_grad:
        return None
    if "output_hidden_states" not in inspect.signature(inner.forward).parameters \
            and "kwargs" not in inspect.signature(inner.forward).parameters:
        return None
    return head


#: Rows of logits made at a time by the fused loss: 128 × 49,152 fp32 is 25 MB, so the softmax and its
#: gradient stay near the cache instead of streaming a [tokens × vocabulary] tensor through memory 6 times.
CE_CHUNK = 128


def fused_linear_cross_entropy(hidden: Any, weight: Any, targets: Any, compute_dtype: Any, chunk: int = CE_CHUNK):
    """``cross_entropy(hidden @ weight.T, targets, reduction="sum")``, its gradient made chunk by chunk.

    ``hidden``: [tokens, dim] (fp32 or bf16); ``weight``: the frozen output projection [vocab, dim];
    the logits are computed in ``compute_dtype`` (as autocast would), the softmax in fp32. The
    gradient with respect to ``hidden`` is computed in the forward pass, a chunk of rows at a time,
    so no [tokens × vocabulary] logits, log-probabilities or gradient tensor ever exists. Only
    ``hidden`` gets a gradient (the output layer is frozen).
    """
    return _FusedLinearCE.apply(hidden, weight, targets, compute_dtype, chunk)


def _fused_function():
    import torch

    class FusedLinearCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, targets, compute_dtype, chunk):
            w = weight.to(compute_dtype)
            grad = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start:start + chunk].to(compute_dtype)
                t = targets[start:start + chunk]
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1, keepdim=True)
                rows = torch.arange(t.numel(), device=t.device)
                total += (lse.squeeze(1) - logits[rows, t]).sum()
                probs = logits.sub_(lse).exp_()  # d loss / d logits = softmax - one-hot
                probs[rows, t] -= 1.0
                grad[start:start + chunk] = (probs.to(compute_dtype) @ w).float()
            ctx.save_for_backward(grad)
            ctx.hidden_dtype = hidden.dtype
            return total

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            return (grad * grad_output).to(ctx.hidden_dtype), None, None, None, None

    return FusedLinearCE


class _LazyFused:
    """``FusedLinearCE.apply``, the class built on first use (no torch import at module import)."""

    _cls = None

    def apply(self, *args):
        if _LazyFused._cls is None:
            _LazyFused._cls = _fused_function()
        return _LazyFused._cls.apply(*args)


_FusedLinearCE = _LazyFused()
