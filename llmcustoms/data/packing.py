"""Packing several examples into one row without letting them see each other.

Each row concatenates whole examples; ``position_ids`` restart at 0 for every example. With no
attention mask and no cache, transformers builds a block-diagonal causal mask from those restarts,
so example B never attends to example A (tests/test_packing.py proves it). The first token of
each example is labelled -100: it must not be predicted from the previous example's last token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

IGNORE = -100


def plan_rows(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Indices grouped into rows of at most ``max_len`` tokens (first-fit decreasing, stable)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = min(lengths[index], max_len)
        for r, free in enumerate(room):
            if size <= free:
                rows[r].append(index)
                room[r] -= size
                break
        else:
            rows.append([index])
            room.append(max_len - size)
    return [sorted(row) for row in rows]


def pack_examples(features: Sequence[dict[str, Any]], max_len: int) -> list[dict[str, list[int]]]:
    """Rows of ``input_ids``, ``labels``, ``position_ids`` built from tokenized examples."""
    lengths = [len(f["input_ids"]) for f in features]
    packed = []
    for row in plan_rows(lengths, max_len):
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for index in row:
            ids = list(features[index]["input_ids"])[:max_len]
            labs = list(features[index]["labels"])[:max_len]
            labs[0] = IGNORE
            input_ids += ids
            labels += labs
            position_ids += list(range(len(ids)))
        packed.append({"input_ids": input_ids, "labels": labels, "position_ids": position_ids})
    return packed


class PackedCollator:
    """Pads packed rows to the longest row of the batch; no attention mask is passed on purpose.

    Padding goes at the end with its own restarting positions, so no real token attends to it.
    Counts the real (non-padding) tokens it has produced in ``tokens_seen``. Data loaders fetch
    ahead, so for throughput ``attach(model)`` counts a batch's tokens when the model actually trains
    on it (``tokens_trained``): each collated batch's count waits in a queue until its forward pass.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.tokens_seen = 0
        self.tokens_trained = 0
        self._pending: deque[int] = deque()

    def reset(self) -> None:
        """Forget batches fetched but not trained on (after an out-of-memory retry rebuilds the loader)."""
        self._pending.clear()

    def attach(self, model) -> None:
        """Count real tokens at each forward pass of ``model`` (training passes only)."""

        def count(module, args, kwargs):
            if self._pending:
                real = self._pending.popleft()
                if module.training:
                    self.tokens_trained += real

        model.register_forward_pre_hook(count, with_kwargs=True)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        real = 0
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for r in rows:
            gap = width - len(r["input_ids"])
            self.tokens_seen += len(r["input_ids"])
            real += len(r["input_ids"])
            batch["input_ids"].append(list(r["input_ids"]) + [self.pad_token_id] * gap)
            batch["labels"].append(list(r["labels"]) + [IGNORE] * gap)
            batch["position_ids"].append(list(r["position_ids"]) + list(range(gap)))
        self._pending.append(real)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
