"""Following one run: its events from the start, then as they come, as typed snapshots.

    for update in RunFollower(run):                     # blocks; one update per batch of new events
        print(update.step, update.max_steps, update.eta_s, update.loss_curve[-1:])
        if update.finished: print(update.status, update.end_kind)

``RunFollower`` is the one way the package follows a run: ``llmcustoms attach``, the TUI's
dashboard (through its backend) and the multi-process launcher all use it, and
``detach.follow_run`` is a thin wrapper that yields its events. It reads ``events.jsonl`` from the
first byte, so the events of earlier segments (before a resume) are replayed; only a ``done`` or
``error`` written while following ends it, or the run's process being gone (the lock in
``runs.rundir``, checked every ``liveness_every_s``). ``should_stop()`` ends the following early
without touching the run.

What a snapshot holds is folded from the events the same way everywhere:

* the loss curve is resume-aware: a ``resume`` at step *r* drops the points after *r*, and a step
  that goes back (a resume, an out-of-memory retry from a checkpoint) replaces the points from
  there on, so the curve never counts a step twice nor jumps back;
* ``step`` is the highest step seen, except that a ``resume`` sets it back to where it resumed;
* the step rate and the ETA come from steps seen *live* only (read after the first read, which
  is the run's history): a replay of an hour's steps read in a millisecond makes no rate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.runs.events import RUN_END_KINDS, finite_number, read_new_events
from llmcustoms.runs.rundir import RunDir, run_is_live
from llmcustoms.runs.status import run_state

RunRef = str | os.PathLike[str] | RunDir

#: ``end_kind`` of a run whose process is gone without a ``done``/``error`` event (killed, lost).
GONE = "gone"
#: Memory fields of an event, in the order ``Memory`` holds them.
MEMORY_FIELDS = ("vram_used_mb", "vram_total_mb", "ram_used_mb", "ram_total_mb", "ram_available_mb",
                 "ram_process_mb")


@dataclass(frozen=True)
class Memory:
    """The latest memory the run reported, in MiB (None: not reported).

    A GPU run reports VRAM; a CPU run reports the system's RAM use and total, what is available,
    and the training process's own share.
    """

    vram_used_mb: float | None = None
    vram_total_mb: float | None = None
    ram_used_mb: float | None = None
    ram_total_mb: float | None = None
    ram_available_mb: float | None = None
    ram_process_mb: float | None = None

    @property
    def label(self) -> str:
        """``VRAM`` on a GPU, ``RAM`` on a CPU, ``Memory`` while nothing was reported."""
        if self.vram_used_mb is not None or self.vram_total_mb is not None:
            return "VRAM"
        if self.ram_used_mb is not None or self.ram_total_mb is not None or self.ram_process_mb is not None:
            return "RAM"
        return "Memory"


@dataclass(frozen=True)
class FollowUpdate:
    """What a follower knows after one read: the new events and the run as they leave it."""

    #: The run's id (its directory's name).
    run_id: str
    #: The run's status as last looked at (``runs.status.run_state``: created, running, done, failed,
    #: stopped, interrupted). Read at the first poll, at each liveness check and when an end event is read.
    status: str
    #: The events read since the previous update, in file order.
    events: tuple[dict[str, Any], ...]
    #: True for the first update: its events are the run's history, not live.
    replayed: bool
    #: The step the run is at, and its planned number of steps (0: not known yet).
    step: int
    max_steps: int
    #: (step, training loss), resume-aware: no step twice, never back in time.
    loss_curve: tuple[tuple[int, float], ...]
    #: The latest memory the run reported.
    memory: Memory
    #: Steps a second and seconds left, from live steps only (None until two live steps were seen).
    steps_per_s: float | None
    eta_s: float | None
    #: The ``message`` of every ``warning`` event so far.
    warnings: tuple[str, ...]
    #: True once the run has ended: a ``done``/``error`` was read live, or the process is gone.
    finished: bool
    #: How it ended: ``done`` or ``error`` (the kind of its last end event), ``gone`` (the process is
    #: gone without one); None while it goes on.
    end_kind: str | None
    #: True once the following itself has ended (the run finished, or ``should_stop()`` said so).
    following_ended: bool = False
    #: run.json's ``error`` and ``adapter_path`` as last looked at.
    error: str | None = None
    adapter_path: str | None = None

    @property
    def loss(self) -> float | None:
        """The latest training loss on the curve."""
        return self.loss_curve[-1][1] if self.loss_curve else None


@dataclass
class RunFold:
    """A run's events folded into its step, planned steps, resume-aware loss curve, latest memory,
    warnings and live step rate, by the rules above.

    The one fold of those: each ``RunFollower`` keeps one, and the TUI's ``RunState`` keeps one under
    what only the dashboard shows (its log, eval points, knowledge). ``apply(event, live)``: ``live``
    is True for an event read as it happened, False for history (it makes no step rate).
    """

    step: int = 0
    max_steps: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)
    warnings: list[str] = field(default_factory=list)
    segment_end: str | None = None  # the kind of the current segment's end event, if it has one
    rate_from: tuple[int, float] | None = None  # (step, t) of the first live step of this stretch
    rate_to: tuple[int, float] | None = None  # (step, t) of the latest live step

    def apply(self, event: dict[str, Any], live: bool = False) -> None:
        """Fold one event in."""
        kind = event.get("kind")
        step = event.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step >= 0:
            self.step = int(step) if kind == "resume" else max(self.step, int(step))
        max_steps = event.get("max_steps")
        if isinstance(max_steps, (int, float)) and max_steps > 0:
            self.max_steps = int(max_steps)
        self._memory(event)
        if kind in ("start", "resume"):
            self.segment_end = None
            self.rate_from = self.rate_to = None  # a new process: its rate starts again
        if kind == "resume" and isinstance(step, (int, float)):
            self.curve = [point for point in self.curve if point[0] <= int(step)]
        elif kind == "step":
            self._step(event, live)
        elif kind == "warning":
            self.warnings.append(str(event.get("message") or "warning").strip())
        elif kind in RUN_END_KINDS:
            self.segment_end = str(kind)

    def _memory(self, event: dict[str, Any]) -> None:
        reported = {name: value for name in MEMORY_FIELDS if (value := finite_number(event.get(name))) is not None}
        if reported:
            self.memory = replace(self.memory, **reported)
        if "ram_used_mb" in event and "ram_available_mb" not in event and "ram_process_mb" not in event:
            # Events of older runs: their ram_used_mb was the process's memory, not the system's use.
            self.memory = replace(self.memory, ram_process_mb=self.memory.ram_used_mb, ram_used_mb=None)

    def _step(self, event: dict[str, Any], live: bool) -> None:
        step = event.get("step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            return
        step = int(step)
        loss = finite_number(event.get("loss"))
        if loss is not None:
            # A step that goes back (an OOM retry from a checkpoint) replaces the points from there on.
            if self.curve and self.curve[-1][0] >= step:
                self.curve = [point for point in self.curve if point[0] < step]
            self.curve.append((step, loss))
        t = finite_number(event.get("t"))
        if not live or t is None:
            return
        if self.rate_to is not None and (step <= self.rate_to[0] or t < self.rate_to[1]):
            self.rate_from = None  # steps went back: the rate starts again from here
        if self.rate_from is None:
            self.rate_from = (step, t)
        self.rate_to = (step, t)

    @property
    def loss(self) -> float | None:
        """The latest training loss on the curve."""
        return self.curve[-1][1] if self.curve else None

    def memory_now(self) -> Memory:
        """The latest memory the run reported (``memory``; kept for the callers that ask for it)."""
        return self.memory

    @property
    def steps_per_s(self) -> float | None:
        """Steps a second over the live steps of this stretch (None before two were seen)."""
        if self.rate_from is None or self.rate_to is None:
            return None
        steps, seconds = self.rate_to[0] - self.rate_from[0], self.rate_to[1] - self.rate_from[1]
        return steps / seconds if steps > 0 and seconds > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the live step rate (None without one or without a planned number of steps)."""
        rate = self.steps_per_s
        if rate is None or self.max_steps <= 0:
            return None
        return max(0, self.max_steps - self.step) / rate


class RunFollower:
    """Follows one run's ``events.jsonl`` from the start and folds it into ``FollowUpdate``s.

    Iterate over it (blocking: one update per batch of new events, and a last one when the
    following ends), or call ``poll()`` yourself from a loop of your own (never blocks).

    ``poll_s``: seconds between two reads while iterating. ``liveness_every_s``: seconds between
    two checks that the run's process is still there (None: never check; the caller knows, as the
    TUI does for a run in its own process). ``should_stop``: asked after each read while
    iterating; True ends the following (``following_ended``, not ``finished``).
    """

    def __init__(self, run: RunRef, *, poll_s: float = 0.25, liveness_every_s: float | None = 1.0,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.run = run if isinstance(run, RunDir) else RunDir.open(run)
        self.poll_s = poll_s
        self.liveness_every_s = liveness_every_s
        self.should_stop = should_stop
        self._fold = RunFold()
        self._offset = 0
        self._polls = 0
        self._last_check = 0.0
        self._status = "created"
        self._error: str | None = None
        self._adapter_path: str | None = None
        self._end_kind: str | None = None
        self._following_ended = False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether the run has ended (an end event read live, or its process gone)."""
        return self._end_kind is not None

    def poll(self) -> FollowUpdate:
        """Read what was written since the last poll; look at the process when due. Never blocks.

        The first poll reads the whole history and, when the run is not live (and not just created),
        finishes at once: a run nobody trains writes nothing more.
        """
        if self.finished:
            return self._update((), replayed=False)
        first = self._polls == 0
        self._polls += 1
        taken: list[dict[str, Any]] = []
        for event in self._read():
            taken.append(event)
            self._fold.apply(event, live=not first)
            if not first and event.get("kind") in RUN_END_KINDS:
                self._end(str(event["kind"]))
                break
        every = self.liveness_every_s
        watching = every is not None
        due = first or (every is not None and time.monotonic() - self._last_check >= every)
        if not self.finished and due:
            self._last_check = time.monotonic()
            if not self._look() and watching:
                for event in self._read():  # whatever it wrote last
                    taken.append(event)
                    self._fold.apply(event, live=not first)
                self._end(self._fold.segment_end or GONE, look=False)
        return self._update(tuple(taken), replayed=first)

    def __iter__(self) -> Iterator[FollowUpdate]:
        """Updates until the run ends or ``should_stop()``: the first one (the history) always, then one
        per read that brought events, and the last one (``following_ended``)."""
        while True:
            update = self.poll()
            left = not update.finished and self.should_stop is not None and self.should_stop()
            if left:
                self._following_ended = True
                update = replace(update, following_ended=True)
            if update.events or update.replayed or update.following_ended:
                yield update
            if update.following_ended:
                return
            time.sleep(self.poll_s)

    # -- the run ---------------------------------------------------------------------------------
    def _read(self) -> list[dict[str, Any]]:
        events, self._offset = read_new_events(self.run.events_path, self._offset)
        return events

    def _look(self) -> bool:
        """Read the run's status; True while it may still write (live, or created and not yet started)."""
        live = run_is_live(self.run)  # first: a process that dies after this reads as dead in run_state too
        state = run_state(self.run)
        self._status, self._error = str(state["status"]), state.get("error")
        self._adapter_path = state.get("adapter_path")
        return live or self._status == "created"

    def _end(self, kind: str, look: bool = True) -> None:
        self._end_kind = kind
        self._following_ended = True
        if look:
            try:
                self._look()  # run.json is written before the end event: its final status is there
            except LLMCustomsError:
                pass  # unreadable now: the status stays as last read

    def _update(self, events: tuple[dict[str, Any], ...], replayed: bool) -> FollowUpdate:
        fold = self._fold
        finished = self.finished
        return FollowUpdate(
            run_id=self.run.id, status=self._status, events=events, replayed=replayed, step=fold.step,
            max_steps=fold.max_steps, loss_curve=tuple(fold.curve), memory=fold.memory_now(),
            steps_per_s=fold.steps_per_s,
            eta_s=(0.0 if self._end_kind == "done" else None) if finished else fold.eta_s,
            warnings=tuple(fold.warnings), finished=finished, end_kind=self._end_kind,
            following_ended=self._following_ended, error=self._error, adapter_path=self._adapter_path)

