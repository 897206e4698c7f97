"""Helpers shared by the benchmark scripts: machine description, medians, tables, RESULTS.md sections.

``write_section("## Training (CPU)", text)`` replaces that one section of ``benchmarks/RESULTS.md``
(from its heading to the next ``## `` heading) and leaves every other section as it was, so the
data, start-up, training and GPU benchmarks can each rewrite their own part in any order.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
TITLE = "# Benchmark results"

if str(ROOT) not in sys.path:  # the scripts run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them ('n/a' where unknown)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def machine(device: str = "cpu") -> str:
    """One line describing where the numbers come from: CPU, cores, RAM, torch, bf16, load; the GPU if used."""
    parts = [f"{cpu_name()}, {os.cpu_count()} logical CPUs"]
    try:
        import psutil

        parts.append(f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM")
    except ImportError:  # pragma: no cover
        pass
    parts.append(f"Python {platform.python_version()}")
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
        if device == "cuda" and torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    except ImportError:  # pragma: no cover
        pass
    try:
        from llmcustoms.hardware.cpu import cpu_has_native_bf16

        parts.append("CPU bf16: " + ("yes" if cpu_has_native_bf16() else "no"))
    except ImportError:  # pragma: no cover
        pass
    return ", ".join(parts)


def now() -> str:
    """The current UTC time, to the minute."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    """How this script was run, as a command someone can paste."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def median(values: Iterable[float]) -> float:
    """The median, NaN for no values."""
    data = [v for v in values if v == v]
    return statistics.median(data) if data else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable printed to a terminal)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace section ``heading`` ('## Something') of ``path`` with ``body``, or append it.

    ``body`` is the section's text without its heading. Every other section stays byte for byte.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE + "\n"
    section = f"{heading}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"(?ms)^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)")
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
