"""Health of a run: alerts sent as ``warning`` events, and a watchdog thread beside the training loop.

Rules (``HealthMonitor``): a non-finite loss stops the run; a loss stuck at zero, eval loss
rising several evaluations in a row and a nearly full disk are warnings; so is a stall — no
progress for far longer than a step usually takes — which only a second thread can see, since
the training thread is the one that is stuck. That thread (``Watchdog``) also writes the
heartbeat into run.json and turns a ``stop`` file into a graceful stop.

Every threshold can be changed per run through the config (``health_<name>``, e.g. in
``TrainRequest.extra``), which is how the tests make a stall happen in seconds.
"""

from __future__ import annotations

import math
import shutil
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from llmcustoms.runs.events import EventSink, make_event
from llmcustoms.runs.rundir import RunDir


@dataclass
class HealthLimits:
    """Thresholds of the health rules."""

    zero_loss_steps: int = 5  # this many steps in a row with loss ~0 → warning
    zero_loss_below: float = 1e-6
    stall_factor: float = 10.0  # no progress for this many usual step times → warning …
    stall_min_s: float = 120.0  # … but never sooner than this
    eval_rising: int = 3  # eval loss rose this many evaluations in a row → warning
    disk_min_free_mb: float = 1024.0
    disk_check_s: float = 30.0
    heartbeat_s: float = 5.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HealthLimits:
        """Defaults, overridden by ``health_<name>`` keys of a run's config."""
        limits = cls()
        for spec in fields(cls):
            key = f"health_{spec.name}"
            if key in config and config[key] is not None:
                setattr(limits, spec.name, type(getattr(limits, spec.name))(config[key]))
        return limits


class Pulse:
    """What the training thread last did, read by the watchdog thread (plain attributes suffice)."""

    def __init__(self) -> None:
        self.step = 0
        self.last_activity = time.monotonic()
        self.step_times: deque[float] = deque(maxlen=20)
        self.in_training = False  # only train/eval/save progress counts; loading a model is not a stall

    def beat(self) -> None:
        """Some progress happened (a step, an evaluation batch, a save)."""
        self.last_activity = time.monotonic()

    def stepped(self, step: int, seconds: float) -> None:
        """An optimizer step finished after ``seconds``."""
        self.step = step
        self.step_times.append(seconds)
        self.beat()

    def usual_step_s(self) -> float | None:
        """The median of the recent step times, once there is one."""
        return statistics.median(self.step_times) if self.step_times else None


class HealthMonitor:
    """The rules; each alert goes to ``emit`` once per episode, as a ``warning`` event."""

    def __init__(self, emit: EventSink, limits: HealthLimits, run_id: str = "RUN") -> None:
        self.emit = emit
        self.limits = limits
        self.run_id = run_id
        self._zero_streak = 0
        self._evals: list[float] = []
        self._warned: set[str] = set()
        self._stall_mark: float | None = None

    def _warn(self, health: str, message: str, **fields_: Any) -> None:
        self.emit(make_event("warning", health=health, message=message, **fields_))

    def _once(self, health: str, condition: bool) -> bool:
        """True the first time ``condition`` holds; re-armed when it stops holding."""
        if not condition:
            self._warned.discard(health)
            return False
        if health in self._warned:
            return False
        self._warned.add(health)
        return True

    def loss(self, step: int, loss: float, learning_rate: float | None = None,
             grad_norm: float | None = None) -> bool:
        """Check a training loss (and gradient norm); True means the run must stop: one is NaN or infinite."""
        bad = (f"The training loss became {loss}" if not math.isfinite(loss) else
               f"The gradient norm became {grad_norm}" if grad_norm is not None and not math.isfinite(grad_norm)
               else None)
        if bad:
            lr = f" (now {learning_rate:g})" if learning_rate else ""
            self._warn("nonfinite_loss", f"{bad} at step {step}: stopping the run. Lower the learning rate{lr} "
                       "or use the bestaccuracy preset; earlier checkpoints are kept.", step=step)
            return True
        self._zero_streak = self._zero_streak + 1 if abs(loss) < self.limits.zero_loss_below else 0
        if self._once("zero_loss", self._zero_streak >= self.limits.zero_loss_steps):
            self._warn("zero_loss", f"The training loss has been 0 for {self._zero_streak} steps (step {step}): "
                       "the examples may be empty, all masked, or memorised already — check the data.", step=step)
        return False

    def evaluation(self, step: int, eval_loss: float) -> None:
        """Check a held-out loss: rising several times in a row suggests overfitting."""
        self._evals.append(eval_loss)
        recent = self._evals[-(self.limits.eval_rising + 1):]
        rising = len(recent) == self.limits.eval_rising + 1 and all(b > a for a, b in zip(recent, recent[1:], strict=False))
        if self._once("eval_rising", rising):
            trail = " → ".join(f"{v:.3f}" for v in recent)
            self._warn("eval_rising", f"The held-out loss rose {self.limits.eval_rising} evaluations in a row "
                       f"({trail}): the model may be overfitting; consider stopping now with "
                       f"`llmcustoms stop {self.run_id}` (the adapter is saved).", step=step)

    def stall(self, pulse: Pulse, now: float | None = None) -> None:
        """Warn when no progress was made for far longer than a step usually takes."""
        usual = pulse.usual_step_s()
        if not pulse.in_training or usual is None:
            return
        now = time.monotonic() if now is None else now
        idle = now - pulse.last_activity
        limit = max(self.limits.stall_min_s, self.limits.stall_factor * usual)
        if idle > limit and self._stall_mark != pulse.last_activity:
            self._stall_mark = pulse.last_activity  # one warning per stall
            self._warn("stall", f"No training progress for {idle:.0f} s after step {pulse.step} (a step usually "
                       f"takes {usual:.1f} s): the machine may be swapping or the GPU hung. The run is still "
                       f"alive; `llmcustoms stop {self.run_id}` stops it.", step=pulse.step, idle_s=round(idle, 1))

    def disk(self, path: Any, free_bytes: int | None = None) -> None:
        """Warn when the disk holding the run is nearly full (checkpoints and the adapter need room)."""
        free = shutil.disk_usage(path).free if free_bytes is None else free_bytes
        free_mb = free / 2**20
        if self._once("disk_low", free_mb < self.limits.disk_min_free_mb):
            self._warn("disk_low", f"Only {free_mb:.0f} MB free on the disk holding {path}: checkpoints and the "
                       "adapter may fail to save; free some space.", free_mb=round(free_mb))


class Watchdog:
    """A daemon thread: heartbeat into run.json, the ``stop`` file, stall and disk checks."""

    def __init__(self, run: RunDir, pulse: Pulse, monitor: HealthMonitor, stop: threading.Event,
                 on_stop_file: Callable[[], None] | None = None, tick_s: float = 0.5) -> None:
        self.run = run
        self.pulse = pulse
        self.monitor = monitor
        self.stop = stop
        self.on_stop_file = on_stop_file
        self.tick_s = tick_s
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"llmcustoms-watchdog-{run.id}", daemon=True)

    def start(self) -> Watchdog:
        """Start the thread (a first heartbeat is written at once)."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        limits = self.monitor.limits
        last_beat = last_disk = -math.inf
        while not self._closing.is_set():
            now = time.monotonic()
            try:
                if not self.stop.is_set() and self.run.stop_path.exists():
                    self.stop.set()
                    if self.on_stop_file is not None:
                        self.on_stop_file()
                if now - last_beat >= limits.heartbeat_s:
                    self.run.update(heartbeat=round(time.time(), 3), step=self.pulse.step)
                    last_beat = now
                if now - last_disk >= limits.disk_check_s:
                    self.monitor.disk(self.run.path)
                    last_disk = now
                self.monitor.stall(self.pulse, now)
            except Exception:  # noqa: BLE001 - the watchdog must never take the run down with it
                pass
            self._closing.wait(self.tick_s)
