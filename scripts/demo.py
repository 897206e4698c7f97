"""A guided command-line demo: validate the sample data, train the embedded model briefly, chat.

    make demo            (or: .venv/bin/python scripts/demo.py [--steps N])
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "llmcustoms.cli"]


def step(title: str, args: list[str]) -> subprocess.CompletedProcess:
    """Print a heading and the command, then run it with its output shown."""
    print(f"\n=== {title}\n$ llmcustoms {' '.join(args)}", flush=True)
    result = subprocess.run(CLI + args, text=True, stdout=subprocess.PIPE)
    print(result.stdout, end="")
    if result.returncode != 0:
        sys.exit(result.returncode)
    return result


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10, help="training steps (CPU: ~10 s each)")
    args = parser.parse_args()
    data = str(ROOT / "examples" / "data")
    step("1. What this machine can do", ["hardware"])
    step("2. Check the sample notes about the fictional Velmoria", ["validate", data])
    result = step("3. Fine-tune the embedded SmolLM2-135M on them",
                  ["train", data, "--model", "smollm2-135m", "--preset", "highspeed",
                   "--max-steps", str(args.steps)])
    run_dir = next(line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if line.startswith("Run:"))
    step("4. Ask it, beside the base model",
         ["chat", run_dir, "--compare", "--prompt", "Who founded Velmoria?", "--max-new-tokens", "40"])


if __name__ == "__main__":
    main()
