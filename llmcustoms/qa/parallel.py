"""Spread pure-Python work over a list across the CPU's cores, keeping the results in order.

The offline generator is plain Python (regular expressions and string tests), so one process uses
one core however many the machine has. For large inputs the list is cut into slices, each slice
goes to a fresh worker process, and the results come back concatenated in the input's order: the
same output as one process, sooner. Small inputs, single-core machines and any failure to start
workers take the serial path (the work is deterministic, so both give identical results).

Workers are *spawned*, never forked: the TUI calls this from a worker thread, and a fork copies
locks other threads may hold.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from llmcustoms.hardware.cpu import usable_cpus

Item = TypeVar("Item")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)

#: Above this many worker processes the start-up cost outweighs the gain for this kind of work.
MAX_WORKERS = 8
#: Environment variable capping the worker count (1 = always serial).
WORKERS_ENV = "LLMCUSTOMS_DATA_WORKERS"


def worker_count(items: int, min_per_worker: int) -> int:
    """How many processes ``items`` items deserve: one per ``min_per_worker`` items, at most the usable CPUs."""
    cores = usable_cpus()  # a container's CPU quota counts, not the host's cores
    cap = MAX_WORKERS
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        cap = int(configured)
    return max(1, min(cores, cap, items // max(1, min_per_worker)))


def map_slices(
    function: Callable[[Sequence[Item]], list[Result]],
    items: Sequence[Item],
    *,
    min_per_worker: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[Result]:
    """``function(items)``, computed slice by slice in worker processes when ``items`` is large.

    ``function`` must be a module-level function (it is pickled by name) that maps a slice of
    items to a list of results, independently of the other slices. ``progress(done, total)`` is
    called with the number of items finished.
    """
    total = len(items)
    workers = worker_count(total, min_per_worker)
    if workers > 1:
        try:
            return _map_in_processes(function, items, workers, progress)
        except Exception as error:  # noqa: BLE001 - a pool that cannot start must not lose the user's data
            logger.info("worker processes unavailable (%s); working in one process", error)
    results = function(items)
    if progress is not None:
        progress(total, total)
    return results


def _map_in_processes(function: Callable[[Sequence[Any]], list[Any]], items: Sequence[Any], workers: int,
                      progress: Callable[[int, int], None] | None) -> list[Any]:

    total = len(items)
    # A few slices per worker, so progress moves and a slow slice does not leave the others idle.
    slices = workers * 4
    bounds = [round(k * total / slices) for k in range(slices + 1)]
    parts: dict[int, list[Any]] = {}
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(function, items[bounds[k]:bounds[k + 1]]): k for k in range(slices)}
        for future in as_completed(futures):
            k = futures[future]
            parts[k] = future.result()
            done += bounds[k + 1] - bounds[k]
            if progress is not None:
                progress(done, total)
    return [result for k in range(slices) for result in parts[k]]
