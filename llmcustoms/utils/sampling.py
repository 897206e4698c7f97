"""An even spread of a list: the same items for the same list and size, every part of the list represented."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def spread_evenly(items: Sequence[T], count: int | None) -> list[T]:
    """``count`` of ``items`` spread evenly over the list, in order (all of them when ``count`` is None or at
    least the list's length; none when it is 0 or less).

    Evenly spread, not the first ones: the lists it samples are grouped (general questions by subject, replay
    requests by kind)."""
    if count is None or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(max(0, count))]
