"""The detached training process: ``python -m llmcustoms.training.worker RUN_DIR [--resume]``.

Started by ``detach.start_detached`` / ``detach.resume_run`` in a session of its own (so the
terminal's SIGHUP never reaches it), with stdout and stderr going to ``RUN_DIR/train.log``. It
trains the TrainRequest recorded in ``RUN_DIR/run.json``.

Its first acts come before the slow imports (torch, transformers): take the run's lock and write
``status: running`` with its pid, which is what the starter waits for. SIGTERM and SIGINT stop
the run gracefully (the step ends, a checkpoint and the adapter are saved); SIGHUP is ignored.

Exit codes: 0 done or stopped, 1 failed, 3 the run is owned by another live process.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.runs.events import JsonlEventSink, make_event
from llmcustoms.runs.progress import LinePrinter
from llmcustoms.runs.rundir import RunBusyError, RunDir, RunLock, process_start_time
from llmcustoms.training.request import request_from_run
from llmcustoms.training.trainer import check_resumable, resume_training, run_training
from llmcustoms.utils.config import Settings
from llmcustoms.utils.logger import quiet_libraries

EXIT_BUSY = 3


def _install_signal_handlers(stop: threading.Event) -> None:
    def request_stop(signum: int, frame: Any) -> None:
        if not stop.is_set():
            print(f"signal {signal.Signals(signum).name}: stopping after this step", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # belt and braces: the new session already shields it


def main(argv: list[str] | None = None, callbacks: list[Any] | None = None) -> int:
    """Train (or resume) the run at RUN_DIR; ``callbacks`` is for test harnesses that wrap this."""
    parser = argparse.ArgumentParser(prog="python -m llmcustoms.training.worker")
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    stop = threading.Event()
    _install_signal_handlers(stop)
    from llmcustoms.training.ranks import SecondaryRunDir, bind_local_device, is_secondary

    bind_local_device()
    if is_secondary():
        # A rank other than 0 of a torchrun launch: it trains, rank 0 owns (locks, writes) the run.
        return _train(SecondaryRunDir(run.path), args.resume, stop, callbacks or [])
    try:
        lock = RunLock(run).acquire()
    except RunBusyError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_BUSY
    try:
        if args.resume:
            try:
                check_resumable(run)  # before writing anything: a finished run must stay as it is
            except LLMCustomsError as error:
                print(f"error: {error}", file=sys.stderr, flush=True)
                return 2
        run.update(status="running", pid=os.getpid(), pid_started_at=process_start_time(),
                   host=socket.gethostname(), heartbeat=round(time.time(), 3), detached=True)
        print(f"worker {os.getpid()} {'resuming' if args.resume else 'training'} {run.path}", flush=True)
        return _train(run, args.resume, stop, callbacks or [])
    finally:
        lock.release()


def _train(run: RunDir, resume: bool, stop: threading.Event, callbacks: list[Any]) -> int:
    quiet_libraries()
    try:
        from llmcustoms.training.ranks import is_secondary

        # A readable line per notable event in train.log (events.jsonl keeps them all).
        printer = LinePrinter()
        settings = Settings.load()  # this process's entry point: read once, here
        if resume:
            result = resume_training(run, sink=printer, stop=stop, callbacks=callbacks, settings=settings)
        else:
            request = request_from_run(run)
            request.callbacks = callbacks
            request.settings = settings
            result = run_training(request, sink=None if is_secondary() else printer, stop=stop, run_dir=run)
    except Exception as error:  # noqa: BLE001 - recorded in run.json and the log; never a silent death
        if not isinstance(error, LLMCustomsError):
            traceback.print_exc()
        message = str(error) if isinstance(error, LLMCustomsError) else f"unexpected {type(error).__name__}: {error}"
        print(f"error: {message}", file=sys.stderr, flush=True)
        _record_failure(run, message)
        return 1
    print(f"{result.status}: {result.steps} steps, adapter in {result.adapter_path}", flush=True)
    return 0


def _record_failure(run: RunDir, message: str) -> None:
    """Mark the run failed when training did not get as far as doing so (e.g. the model was not found)."""

    data = run.read()
    if data.get("status") != "running" or data.get("pid") != os.getpid():
        return  # run_training already recorded how it ended
    run.update(status="failed", error=message, finished_at=time.time())
    sink = JsonlEventSink(run.events_path)
    try:
        sink(make_event("error", message=message))
    finally:
        sink.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
