"""The hardware report from a child process, for callers that must stay responsive (the TUI).

``HardwareDetector.detect()`` imports PyTorch, a few seconds of CPU that hold Python's GIL most of
the time: run in a thread of an interactive program, it freezes that program's screen until torch
is in. Run as ``python -m llmcustoms.hardware.probe`` it costs the caller nothing but a
wait, and the asking program never creates a CUDA context of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.hardware.detector import HardwareDetector

#: Seconds the child may take: importing a CUDA build of torch on a slow disk takes tens of seconds.
PROBE_TIMEOUT_S = 300.0


def detect_in_subprocess(timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """``HardwareDetector().detect()`` run by a fresh interpreter; the same dict, read back as JSON.

    The child inherits the environment (``FORCE_CPU``, ``MAX_VRAM_GB``, ``CUDA_VISIBLE_DEVICES``,
    ``LLMCUSTOMS_HOME``) and the working directory (a ``.env`` there).

    Raises:
        LLMCustomsError: the child failed, timed out or printed something that is not a report.
    """
    command = [sys.executable, "-m", "llmcustoms.hardware.probe"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise LLMCustomsError(f"The hardware probe took longer than {timeout:.0f} s (importing PyTorch?).") from error
    except OSError as error:
        raise LLMCustomsError(f"The hardware probe could not start: {error}.") from error
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no message")
        raise LLMCustomsError(f"The hardware probe failed: {last.strip()}")
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise LLMCustomsError("The hardware probe printed something that is not a report.") from error
    if not isinstance(report, dict):
        raise LLMCustomsError("The hardware probe printed something that is not a report.")
    return report


def main() -> int:
    """Print this machine's hardware report as JSON on stdout."""

    print(json.dumps(HardwareDetector().detect_report().to_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
