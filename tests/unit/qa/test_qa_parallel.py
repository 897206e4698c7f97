"""The offline generator over worker processes: the same examples, in the same order, as one process."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from llmcustoms.data.chunking import chunk_text
from llmcustoms.data.types import Chunk
from llmcustoms.qa import offline, parallel
from llmcustoms.qa.offline import OfflineGenerator

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"


def _chunks(copies: int = 6) -> list[Chunk]:
    """Every chunk of the sample data, several times over under other names (a few hundred chunks)."""
    chunks = []
    for copy in range(copies):
        for path in sorted(EXAMPLES.glob("*.txt")):
            for index, piece in enumerate(chunk_text(path.read_text(encoding="utf-8"), 600, 100)):
                chunks.append(Chunk(text=piece, source=f"copy{copy}/{path.name}:{index}"))
    return chunks


def _cores() -> int:
    from llmcustoms.hardware.cpu import usable_cpus

    return usable_cpus()


@pytest.mark.skipif(_cores() < 2, reason="one core: the serial path is the only path")
def test_worker_processes_give_the_same_examples_in_the_same_order(monkeypatch):
    chunks = _chunks()
    serial = OfflineGenerator().generate(chunks)  # fewer chunks than one worker's share: one process
    monkeypatch.setattr(offline, "CHUNKS_PER_WORKER", 20)
    assert parallel.worker_count(len(chunks), 20) > 1
    seen, workers = [], set()

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        workers.update(child.pid for child in multiprocessing.active_children())

    spread = OfflineGenerator().generate(chunks, progress=progress)
    assert len(workers) > 1, "the slices ran in worker processes"
    assert len(serial) > 100
    assert [(e.messages, e.source, e.kind) for e in spread] == [(e.messages, e.source, e.kind) for e in serial]
    assert seen[-1] == (len(chunks), len(chunks)) and len(seen) > 1
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_the_worker_count_follows_size_cores_and_the_setting(monkeypatch):
    assert parallel.worker_count(10, 2000) == 1  # too little work to start a process for
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    assert parallel.worker_count(10**6, 10) == 1
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.worker_count(10**6, 10) == min(3, _cores())
    monkeypatch.delenv(parallel.WORKERS_ENV)
    assert parallel.worker_count(10**6, 10) == min(parallel.MAX_WORKERS, _cores())


def test_workers_that_cannot_start_fall_back_to_one_process(monkeypatch):
    chunks = _chunks(2)
    expected = OfflineGenerator().generate(chunks)

    def no_processes(*args, **kwargs):
        raise OSError("[Errno 38] Function not implemented: /dev/shm")

    monkeypatch.setattr(parallel, "_map_in_processes", no_processes)
    monkeypatch.setattr(offline, "CHUNKS_PER_WORKER", 5)
    monkeypatch.setattr(parallel, "worker_count", lambda items, per: 2)
    monkeypatch.setattr(offline, "worker_count", lambda items, per: 2)
    seen = []
    got = OfflineGenerator().generate(chunks, progress=lambda done, total: seen.append(done))
    assert [e.messages for e in got] == [e.messages for e in expected]
    assert seen == [len(chunks)]
