"""Reading documents in a worker process with a time and memory limit per file.

PDF, ZIP and HTML libraries are native code: a hostile or broken file can loop, crash or allocate
without end. ``Sandbox.extract`` sends one file at a time to a worker (``python -m
llmcustoms.data.formats.sandbox``, started on first use and kept for the folder); a file that takes
longer than ``timeout_s`` gets the worker killed and a fresh one for the next file; a worker that
dies (a crash, the memory limit) costs only that file. Messages are pickled over a pair of pipes
(``multiprocessing.connection.Connection``), never over stdout, which libraries may print to.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llmcustoms.data.formats import extract
from llmcustoms.data.formats.types import ExtractedText, ExtractError

#: Seconds one file may take to read (a 2,000-page PDF takes a few seconds).
DEFAULT_TIMEOUT_S = 120.0
#: How often the worker says how far it has read a long file (seconds).
PROGRESS_EVERY_S = 1.0
#: Address space the worker may use (bytes): a file that needs more is refused, the folder goes on.
DEFAULT_MEMORY_BYTES = 4 * 1024**3


def memory_words(memory_bytes: int) -> str:
    """The memory limit as sentences say it: '4 GB', '1.5 GB', '96 MB'."""
    if memory_bytes >= 1024**3:
        return f"{memory_bytes / 1024**3:g} GB"
    return f"{memory_bytes / 1024**2:.0f} MB"


class Sandbox:
    """A worker process that reads documents, one at a time, each under a time limit. Use as a context manager."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 progress_every_s: float = PROGRESS_EVERY_S) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self.progress_every_s = progress_every_s
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        # The worker imports llmcustoms from wherever this process found it.
        package_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "llmcustoms.data.formats.sandbox", str(to_child_r), str(from_child_w),
                 str(self.memory_bytes), str(self.progress_every_s)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=env, close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._receive = Connection(from_child_r, writable=False)

    def _stop(self) -> None:
        for conn in (self._send, self._receive):
            if conn is not None:
                conn.close()
        self._send = self._receive = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        """End the worker (if one was started)."""
        self._stop()

    def extract(self, path: Path, declared: str,
                progress: Callable[[int, int], None] | None = None) -> ExtractedText:
        """``formats.extract(path, declared)`` in the worker; ExtractError on a timeout, a crash or the memory limit.

        ``progress(done, total)``: the pages of a PDF read so far, about every ``PROGRESS_EVERY_S`` seconds.
        """
        if self._process is None:
            self._start()
        assert self._send is not None and self._receive is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            self._send.send((str(path), declared))
            while True:
                if not self._receive.poll(max(0.0, deadline - time.monotonic())):
                    self._stop()
                    raise ExtractError(f"took longer than {self.timeout_s:g} s to read (the per-file time limit); "
                                       f"skipped it.")
                status, value = self._receive.recv()
                if status != "progress":
                    break
                if progress is not None:
                    progress(*value)
        except (EOFError, OSError, BrokenPipeError):
            self._stop()
            raise ExtractError("made the document reader stop (the file is damaged, or needs more than the "
                               f"{memory_words(self.memory_bytes)} memory limit per file); skipped it.") from None
        if status == "ok":
            return value  # type: ignore[no-any-return]
        raise ExtractError(value)


class _Throttled:
    """The worker's ``progress(done, total)``: sent to the parent a message a second at most, not one per page."""

    def __init__(self, send: Connection, every_s: float) -> None:
        self.send = send
        self.every_s = every_s
        self.said = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.said >= self.every_s:
            self.said = now
            self.send.send(("progress", (done, total)))


def _serve(receive: Connection, send: Connection, every_s: float = PROGRESS_EVERY_S,
           memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
    # Made before any file is read: when memory runs out, building this sentence could fail in turn.
    out_of_memory = ("error", f"needs more than the {memory_words(memory_bytes)} memory limit per file to read; "
                              f"skipped it.")
    while True:
        try:
            path, declared = receive.recv()
        except EOFError:
            return
        reply: tuple[str, Any]
        try:
            reply = ("ok", extract(Path(path), declared, _Throttled(send, every_s)))
        except ExtractError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            # The reader let go of what it held as the error unwound: the worker goes on with the next file.
            reply = out_of_memory
        except RecursionError:
            reply = ("error", "is nested too deeply to read; skipped it.")
        except OSError as exc:
            reply = ("error", f"cannot be read ({exc.strerror or exc}); skipped it.")
        except Exception as exc:  # noqa: BLE001 - a library's own error on a damaged file: one sentence, go on
            reply = ("error", f"is damaged and cannot be read ({type(exc).__name__}); skipped it.")
        send.send(reply)
        del reply
        # python-docx's lxml-backed objects form reference cycles that only the cycle collector frees, and
        # its thresholds let them pile up: the worker grew from 65 to 99 MB over 30 Word files of 1 MB of
        # text. Collecting after each file keeps it flat (36 MB), at a few milliseconds a file.
        gc.collect()


def main(argv: list[str]) -> None:
    """The worker: read requests from one pipe, answer on the other, under an address-space limit."""
    receive = Connection(int(argv[0]), writable=False)
    send = Connection(int(argv[1]), readable=False)
    limit = int(argv[2])
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # no rlimit here (Windows) or not allowed: the time limit stays
        pass
    _serve(receive, send, float(argv[3]) if len(argv) > 3 else PROGRESS_EVERY_S, limit)


if __name__ == "__main__":
    main(sys.argv[1:])
