"""Train / held-out eval split with a fixed seed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_examples(examples: Sequence[T], eval_fraction: float = 0.1, seed: int = 42) -> tuple[list[T], list[T]]:
    """Shuffle ``examples`` with ``seed`` and hold out ``eval_fraction`` of them (at least one, when
    there are two or more examples; never all of them). The same input and seed give the same split.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError("eval_fraction must be at least 0 and below 1")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(order) * eval_fraction)
    if eval_fraction > 0 and len(order) >= 2:
        n_eval = min(max(1, n_eval), len(order) - 1)
    eval_ids = set(order[:n_eval])
    # Keep the original order inside each part (stable, readable JSONL files).
    train = [e for i, e in enumerate(examples) if i not in eval_ids]
    held_out = [e for i, e in enumerate(examples) if i in eval_ids]
    return train, held_out
