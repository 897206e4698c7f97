"""A run directory: ``<runs>/<id>/`` with run.json, events.jsonl, checkpoints/ and adapter/.

A new run always gets a new directory (created exclusively), so nothing trained is overwritten.
``run.json`` is rewritten atomically (temp file + rename) so a reader never sees half of it.

One process at a time owns a run: it holds an exclusive ``flock`` on ``<run>/.lock`` for as
long as it trains (``RunLock``). The kernel drops that lock the moment the process dies, even
on ``kill -9``, so "is anybody training this run?" has an answer that a stale pid or a stale
heartbeat can not fake; ``run_is_live`` asks it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from llmcustoms.errors import ConfigError, DamagedRunError, InputError, RunNotFoundError
from llmcustoms.paths import runs_dir, setting, setting_origin
from llmcustoms.runs.info import RunInfo

try:  # POSIX; elsewhere liveness falls back to the pid alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RUN_STATUSES = ("created", "running", "done", "failed", "stopped", "interrupted")
#: Statuses after which nothing will change the run unless it is resumed.
FINAL_STATUSES = ("done", "failed", "stopped", "interrupted")

# run.json is updated from the training thread and the watchdog's heartbeat thread.
_UPDATE_LOCK = threading.Lock()


class RunBusyError(InputError):
    """The run is owned by a live process (training, or being resumed) and can not be taken."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:32] or "model"


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:  # a full disk must not leave an empty temp file behind; ``path`` itself is untouched
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def runs_root_source(root: str | os.PathLike[str] | None = None) -> str:
    """Which setting chose the runs folder and where it was set, in words (for a sentence about it)."""
    if root is not None:
        return f"--output-dir {root}"
    value = setting("OUTPUT_DIR")
    if value:
        return f"OUTPUT_DIR={value} (set in {setting_origin('OUTPUT_DIR')})"
    if os.environ.get("LLMCUSTOMS_HOME"):
        return f"LLMCUSTOMS_HOME={os.environ['LLMCUSTOMS_HOME']} (set in the environment)"
    return "the default runs folder"


def check_runs_root(root: str | os.PathLike[str] | None = None, create: bool = True) -> Path:
    """The runs folder (``root``, else OUTPUT_DIR, else the default), made if ``create``; ConfigError when it can
    not hold runs (not a folder, not writable, or impossible to make), naming the setting and where it was set.

    With ``create=False`` a missing folder is only checked: a uniquely named folder is made and removed in its
    nearest existing parent (so two runs starting at once never remove what the other made)."""
    base = (Path(root) if root is not None else runs_dir()).expanduser()
    try:
        if base.exists() and not base.is_dir():
            raise NotADirectoryError(20, "it is a file, not a folder")
        if create:
            base.mkdir(parents=True, exist_ok=True)
        elif not base.is_dir():
            parent = next(p for p in base.parents if p.exists())
            if not parent.is_dir():
                raise NotADirectoryError(20, f"{parent} is a file, not a folder")
            os.rmdir(tempfile.mkdtemp(prefix=".llmcustoms-check-", dir=parent))
        if base.is_dir() and not os.access(base, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        why = error.strerror or type(error).__name__
        fix = "give a folder you can write to" if root is not None else \
            "point it at a folder you can write to, or give --output-dir"
        raise ConfigError(f"The runs folder {base} cannot be used ({why}): it comes from {runs_root_source(root)}; "
                          f"{fix}.") from None
    return base


class RunDir:
    """One training run on disk. Create with ``RunDir.create``; open with ``RunDir.open``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- locations -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run's id: its directory name."""
        return self.path.name

    @property
    def run_json(self) -> Path:
        """``run.json``: the run's status and metadata."""
        return self.path / "run.json"

    @property
    def events_path(self) -> Path:
        """``events.jsonl``: the event stream."""
        return self.path / "events.jsonl"

    @property
    def adapter_dir(self) -> Path:
        """``adapter/``: the final PEFT adapter."""
        return self.path / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        """``checkpoints/``: intermediate checkpoints."""
        return self.path / "checkpoints"

    @property
    def log_path(self) -> Path:
        """``train.log``: stdout/stderr of a detached worker."""
        return self.path / "train.log"

    @property
    def lock_path(self) -> Path:
        """``.lock``: flock-ed by the process that trains the run."""
        return self.path / ".lock"

    @property
    def stop_path(self) -> Path:
        """``stop``: its existence asks the training process to stop gracefully."""
        return self.path / "stop"

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def create(cls, model_name: str, root: str | os.PathLike[str] | None = None, **fields: Any) -> RunDir:
        """A new, empty run directory under ``root`` (default: the runs folder) with a first run.json."""
        base = check_runs_root(root)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            run_id = f"{stamp}-{_slug(model_name)}-{secrets.token_hex(2)}"
            try:
                (base / run_id).mkdir()
            except FileExistsError:
                continue
            run = cls(base / run_id)
            run.write({"id": run_id, "status": "created", "model": model_name, "created_at": time.time(),
                       "pid": os.getpid(), **fields})
            return run
        raise RuntimeError("could not create a unique run directory")  # pragma: no cover

    @classmethod
    def open(cls, ref: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunDir:
        """The run at path ``ref``, or with id (or unique id prefix) ``ref`` in the runs folder."""
        candidate = Path(ref).expanduser()
        if (candidate / "run.json").is_file():
            return cls(candidate.resolve())
        base = Path(root) if root is not None else runs_dir()
        if (base / str(ref) / "run.json").is_file():
            return cls(base / str(ref))
        # Only a bare id (or prefix) is looked up in the runs folder: a path that holds no run (an absolute
        # one, or one with a folder in it, such as the data folder given by mistake) names no run there.
        text = str(ref)
        is_id = text not in ("", ".", "..") and not candidate.is_absolute() and os.sep not in text and "/" not in text \
            and not any(c in text for c in "*?[")
        matches = sorted(p for p in base.glob(f"{text}*") if (p / "run.json").is_file()) \
            if is_id and base.is_dir() else []
        if len(matches) == 1:
            return cls(matches[0])
        if len(matches) > 1:
            raise RunNotFoundError(f"{ref!r} matches {len(matches)} runs; give more of the id.")
        raise RunNotFoundError(f"No run found at {ref!r} (looked for run.json there and in {base}).")

    def read(self) -> dict[str, Any]:
        """The content of run.json."""
        try:
            data = json.loads(self.run_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunNotFoundError(f"{self.path} holds no run.json.") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise DamagedRunError(f"{self.run_json} is damaged ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0] if str(error) else 'empty'}); the run's adapter "
                                  f"folder, if any, is {self.adapter_dir}.") from None
        if not isinstance(data, dict):
            raise DamagedRunError(f"{self.run_json} is damaged (it holds no JSON object).")
        return data

    def info(self) -> RunInfo:
        """run.json, typed."""
        return RunInfo.from_dict(self.read())

    def write(self, data: dict[str, Any]) -> None:
        """Replace run.json with ``data``."""
        atomic_write_json(self.run_json, data)

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into run.json and return the result."""
        with _UPDATE_LOCK:
            data = self.read() if self.run_json.exists() else {}
            data.update(fields)
            self.write(data)
            return data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


# -- ownership ----------------------------------------------------------------------------------
class RunLock:
    """Exclusive ownership of a run by this process, re-entrant within it.

    ``with RunLock(run): ...`` raises RunBusyError when another process holds the run. A detached
    worker takes the lock as its first act and ``run_training`` takes it again (a no-op then).
    """

    _held: dict[str, list[Any]] = {}  # path -> [fd, depth]; only ever touched under _guard
    _guard = threading.Lock()

    def __init__(self, run: RunDir, wait_s: float = 2.0) -> None:
        self.run = run
        self.wait_s = wait_s  # a liveness probe holds the lock for microseconds: retry briefly
        self._key = str(run.lock_path.resolve())

    def acquire(self) -> RunLock:
        """Take the lock or raise RunBusyError."""
        with RunLock._guard:
            held = RunLock._held.get(self._key)
            if held is not None:
                held[1] += 1
                return self
            fd = os.open(self.run.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + self.wait_s
            while not _try_flock(fd):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    pid = self.run.read().get("pid") if self.run.run_json.exists() else None
                    raise RunBusyError(
                        f"Run {self.run.id} is live (process {pid}): follow it with `llmcustoms attach "
                        f"{self.run.id}` or stop it first with `llmcustoms stop {self.run.id}`."
                    )
                time.sleep(0.05)
            RunLock._held[self._key] = [fd, 1]
            return self

    def release(self) -> None:
        """Give the lock back (the last release closes it)."""
        with RunLock._guard:
            held = RunLock._held.get(self._key)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del RunLock._held[self._key]
                os.close(held[0])  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_flock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover - no flock: ownership is not enforced
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def lock_is_held(run: RunDir) -> bool | None:
    """True when some process holds the run's lock, False when none does, None when unknowable."""
    if fcntl is None or not run.lock_path.exists():
        return None if fcntl is None else False
    with RunLock._guard:
        if str(run.lock_path.resolve()) in RunLock._held:
            return True
    fd = os.open(run.lock_path, os.O_RDONLY)  # flock needs no write access: any user may look
    try:
        if _try_flock(fd):
            return False  # closing below releases the probe at once
        return True
    finally:
        os.close(fd)


def process_start_time(pid: int | None = None) -> float | None:
    """When process ``pid`` (default: this one) started, to tell it from a later one with its pid."""
    try:
        import psutil

        return round(psutil.Process(pid or os.getpid()).create_time(), 2)
    except Exception:  # noqa: BLE001 - no psutil or no such process: unknown
        return None


def pid_is_alive(pid: int | None, started_at: float | None = None) -> bool:
    """True when process ``pid`` runs (not a zombie) and, if given, started at ``started_at``."""
    if not pid:
        return False
    try:
        import psutil

        process = psutil.Process(int(pid))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(process.create_time() - float(started_at)) < 1.0
    except Exception:  # noqa: BLE001 - gone, or not ours to look at
        return False


def remove_dead_process_folders(parent: Path, pattern: str) -> list[tuple[Path, int]]:
    """Remove folders under ``parent`` whose name matches ``pattern`` (a regex whose group 1 is a pid) and
    whose process is gone: what a killed save or export left. Returns (folder, bytes freed) pairs."""

    removed: list[tuple[Path, int]] = []
    if not parent.is_dir():
        return removed
    for candidate in parent.iterdir():
        match = re.fullmatch(pattern, candidate.name)
        if not match or candidate.is_symlink() or not candidate.is_dir():
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or pid_is_alive(pid):
            continue
        size = sum(f.stat().st_size for f in candidate.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append((candidate, size))
    return removed


def run_is_live(run: RunDir, data: dict[str, Any] | None = None) -> bool:
    """True while a process trains ``run`` (the lock; the pid where locks can not be asked)."""
    held = lock_is_held(run)
    if held is not None:
        return held
    data = data if data is not None else run.read()  # pragma: no cover - no flock
    return pid_is_alive(data.get("pid"), data.get("pid_started_at"))  # pragma: no cover


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunDir]:
    """Every run under ``root`` (default: the runs folder), oldest first."""
    base = Path(root) if root is not None else runs_dir()
    if not base.is_dir():
        return []
    return [RunDir(p) for p in sorted(base.iterdir()) if (p / "run.json").is_file()]
