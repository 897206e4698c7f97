"""Training events: one JSON object a line in ``runs/<id>/events.jsonl``.

The trainer sends each event to a *sink* (any callable taking a dict). The TUI, the CLI's
progress bar and ``llmcustoms attach`` all read the same file. Fields may be added, never renamed:
``t, kind, step, max_steps, loss, lr, tokens_per_s, vram_used_mb, vram_total_mb, eta_s, message``.
``eval_progress`` (during an evaluation) adds ``batch`` and ``batches`` (None when unknown).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A run (or one segment of it, before a resume) writes nothing more after one of these.
RUN_END_KINDS = frozenset({"done", "error"})
#: What ends following a stream of events: a run's end, or a ``stop`` request being answered.
FOLLOW_END_KINDS = RUN_END_KINDS | {"stop"}

#: Every kind of event, in one place (``Event.make`` refuses any other).
EVENT_KINDS = ("start", "step", "eval", "checkpoint", "warning", "oom_retry", "done", "error", "resume",
               "stop", "info", "knowledge", "eval_progress", "knowledge_check")

EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Event:
    """One event: its time, its kind (one of ``EVENT_KINDS``) and its other fields (``step``, ``loss``, …).

    ``to_dict()`` is the line written to events.jsonl (``t`` and ``kind`` first); ``from_dict`` reads one.
    """

    kind: str
    t: float
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, kind: str, **fields: Any) -> Event:
        """A new event now; None-valued fields are left out, a NaN/inf float is kept as text."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r} (add it to EVENT_KINDS)")
        kept: dict[str, Any] = {}
        for key, value in fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                # JSON has no NaN: keep the fact as text so the event is written, not dropped
                kept[f"{key}_nonfinite"] = str(value)
            elif value is not None:
                kept[key] = value
        return cls(kind=kind, t=round(time.time(), 3), fields=kept)

    @classmethod
    def from_dict(cls, event: Mapping[str, Any]) -> Event:
        """An event read back (kinds from other versions are kept as they are)."""
        return cls(kind=str(event.get("kind") or ""), t=float(event.get("t") or 0.0),
                   fields={k: v for k, v in event.items() if k not in ("t", "kind")})

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "kind": self.kind, **self.fields}

    @property
    def step(self) -> int | None:
        step = self.fields.get("step")
        return None if step is None else int(step)

    @property
    def message(self) -> str | None:
        message = self.fields.get("message")
        return None if message is None else str(message)

    @property
    def ends_run(self) -> bool:
        """A ``done`` or ``error``: the run (or this segment of it) writes nothing more."""
        return self.kind in RUN_END_KINDS


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (events may carry nulls, strings or NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event dict with its time and kind first; None-valued fields are left out (``Event.make``'s dict)."""
    return Event.make(kind, **fields).to_dict()


class JsonlEventSink:
    """Appends events to a file, one line each, flushed at once so a reader sees them live."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run's life

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, allow_nan=False, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._reopen_if_gone()
            self._file.write(line + "\n")
            self._file.flush()

    def _reopen_if_gone(self) -> None:
        """A file deleted (or replaced) while the run writes it is created again, so readers see the run go
        on (``attach``, ``runs``, the TUI); the lines written to the deleted file are gone with it."""
        try:
            same = os.path.samestat(os.fstat(self._file.fileno()), os.stat(self.path))
        except OSError:
            same = False
        if not same:
            self._file.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run's life

    def close(self) -> None:
        """Close the file; later events are dropped."""
        with self._lock:
            self._file.close()


class FanoutSink:
    """Sends each event to several sinks; one failing sink does not stop the others."""

    def __init__(self, *sinks: EventSink | None) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, event: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - a display error must never stop training
                pass


class ListSink:
    """Keeps every event in memory (tests, FineTuner)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete event in the file (a half-written last line is skipped)."""
    events, _ = read_new_events(path, 0)
    return events


def read_new_events(path: str | os.PathLike[str], offset: int) -> tuple[list[dict[str, Any]], int]:
    """Events written after byte ``offset`` and the offset to continue from.

    Only whole lines are consumed, so a line being written is read on the next call.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end + 1


def follow_events(path: str | os.PathLike[str], poll_s: float = 0.25,
                  stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Yields events as they are written until a ``done``/``error``/``stop`` event or ``stop()``."""
    offset = 0
    while True:
        events, offset = read_new_events(path, offset)
        for event in events:
            yield event
            if event.get("kind") in FOLLOW_END_KINDS:
                return
        if stop is not None and stop():
            return
        time.sleep(poll_s)
