#!/usr/bin/env python
"""Write ``screenshots/<n>-<screen>.svg`` for the five screens of ``llmcustoms-tui``.

The real app, the real core: the bundled ``examples/data``, the embedded SmolLM2-135M, a short real
training run on this machine, and a real streamed answer. PNGs are written too when ``cairosvg`` is
installed (optional; SVG is what the README shows). Runs go to a temporary folder unless ``--keep-run``.

    python scripts/screenshots.py [--size 120x40] [--max-steps 12] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHOTS = ("hardware", "data", "plan", "train", "chat")


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Let the app run until ``predicate()`` holds (or give up with a sentence)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")


def busy(app) -> bool:
    """Whether a screen's worker is still running (the folder tree's loader never ends: ignored)."""
    from textual.widgets import DirectoryTree

    return any(not w.is_finished and not isinstance(w.node, DirectoryTree) and w.name != "training"
               for w in app.workers)


async def shoot(pilot, out: Path, number: int, name: str, png: bool) -> Path:
    """Save the current screen as ``<number>-<name>.svg`` (and .png), without toasts."""
    await wait_for(pilot, lambda: not busy(pilot.app), 300, f"the {name} screen's work")
    await pilot.pause(0.2)
    pilot.app.clear_notifications()
    await pilot.pause(0.2)
    path = out / f"{number}-{name}.svg"
    path.write_text(pilot.app.export_screenshot(title=f"llmcustoms-tui — {name}"), encoding="utf-8")
    if png:
        import cairosvg

        cairosvg.svg2png(url=str(path), write_to=str(path.with_suffix(".png")), output_width=1600)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return path


async def run(args: argparse.Namespace) -> None:
    from llmcustoms_tui.app import LLMCustomsApp
    from llmcustoms_tui.screens.chat import ChatScreen
    from llmcustoms_tui.screens.train import TrainScreen

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import cairosvg  # noqa: F401

        png = not args.no_png
    except ImportError:
        png = False
    data = os.path.relpath(ROOT / "examples" / "data")
    app = LLMCustomsApp(data=data, model=args.model, preset=args.preset, max_steps=args.max_steps, qa="offline",
                        check_live_runs=False, cursor_blink=False, few_colours=False)
    width, height = (int(n) for n in args.size.lower().split("x"))
    async with app.run_test(size=(width, height)) as pilot:
        await wait_for(pilot, lambda: app.state.hardware is not None, 120, "the hardware probe")
        await shoot(pilot, out, 1, "hardware", png)

        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.screen.query(".sample")) > 0, 600, "the data preview")
        await shoot(pilot, out, 2, "data", png)

        await pilot.press("n")
        await wait_for(pilot, lambda: app.state.plan is not None, 120, "the plan")
        await shoot(pilot, out, 3, "plan", png)

        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), 30, "the dashboard")
        await wait_for(pilot, lambda: app.screen.run_state.finished, args.train_timeout, "the end of training")
        if app.screen.run_state.status != "done":
            raise SystemExit("screenshots: the run did not finish: " + " / ".join(app.screen.run_state.log[-3:]))
        await shoot(pilot, out, 4, "train", png)

        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), 30, "the chat")
        chat = app.screen
        await wait_for(pilot, lambda: chat.session is not None, 300, "the chat model")
        if chat.held_out:  # a held-out question of the knowledge score: tuned and base side by side
            await pilot.press("ctrl+n", "enter")
        else:
            prompts = list(getattr(chat.session, "example_prompts", None) or []) or ["What is the Tide Engine?"]
            chat.compare = False
            await pilot.press("ctrl+b")  # the base model's answer beside the tuned one
            chat.ask(prompts[0])
        await pilot.pause(0.2)
        await wait_for(pilot, lambda: not chat.busy, 300, "the answer")
        await shoot(pilot, out, 5, "chat", png)
        await pilot.press("escape")  # frees the model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="folder for the files (default: screenshots/)")
    parser.add_argument("--size", default="120x40", help="terminal size, COLUMNSxROWS (default: 120x40)")
    parser.add_argument("--model", default="smollm2-135m", help="model to train (default: the embedded one)")
    parser.add_argument("--preset", default="highspeed", help="preset (default: highspeed)")
    parser.add_argument("--max-steps", type=int, default=12, help="training steps (default: 12)")
    parser.add_argument("--train-timeout", type=float, default=1800, help="seconds to wait for training")
    parser.add_argument("--keep-run", action="store_true", help="keep the run in the usual runs folder")
    parser.add_argument("--no-png", action="store_true", help="SVG only, even when cairosvg is installed")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.pop("GROQ_API_KEY", None)  # screenshots never talk to a server, and show no key
    if args.keep_run:
        asyncio.run(run(args))
        return 0
    with tempfile.TemporaryDirectory(prefix="llmcustoms-shots-") as runs:
        os.environ["OUTPUT_DIR"] = runs
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
