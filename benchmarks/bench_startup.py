"""Start-up and latency: the TUI's first screen, `import llmcustoms`, model load, chat first token, dashboard cost.

Usage:
    .venv/bin/python benchmarks/bench_startup.py               # 3 cold processes per measurement
    .venv/bin/python benchmarks/bench_startup.py --repeats 5 --no-write

Every start-up number is a fresh Python process (cold: nothing imported yet; the OS file cache is
whatever earlier runs left, so run 1 is reported besides the median). Times are wall-clock from
just before the process is spawned to the moment measured, so interpreter start-up is included.

- TUI first screen: the app has no "exit once the first screen is mounted" hook of its own, so the
  child imports ``llmcustoms_tui.app`` and runs ``LLMCustomsApp().run(headless=True, auto_pilot=...)``
  (Textual's own start-up, headless driver); the auto-pilot, which Textual starts once the app is
  ready, waits for the first screen's pending messages and notes the time; then it waits for the
  hardware probe's report (a child process imports torch) to fill the screen in, notes that too
  and exits. Target ≤ 0.8 s for the first screen.
- ``import llmcustoms``: and whether it pulled in torch (it must not).
- Embedded model load from cache: ``ModelManager().ensure_embedded()`` (already converted) +
  tokenizer + ``from_pretrained``. Importing torch, transformers and the model/tokenizer classes is
  shown apart: it is paid once per process whatever is loaded. Target ≤ 1 s.
- Chat first token: ``ChatSession(base model folder)`` loaded, then the time from ``stream(prompt)``
  to its first piece of text, on the CPU. Target ≤ 0.5 s.
- Dashboard overhead: what the training process pays per optimizer step for the dashboard (the
  ``EventCallback``'s step and log hooks writing events.jsonl, RAM sampling included), and what the
  TUI's tailing costs per poll, against the time of one real CPU training step. Target ≤ 1 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command_line, load_average, machine, median, now, table, write_section  # noqa: E402

PY = sys.executable

CHILD_BARE = "import time, json; print(json.dumps({'end': time.time()}))"

CHILD_IMPORT = """
import time, json, sys
start = time.time()
import llmcustoms
end = time.time()
print(json.dumps({"start": start, "end": end, "torch_loaded": "torch" in sys.modules}))
"""

CHILD_TUI = """
import time, json, sys
start = time.time()
from llmcustoms_tui.app import LLMCustomsApp
imported = time.time()
seen = {}

async def first_screen(pilot):
    await pilot.pause()  # the first screen is mounted and its first messages are handled
    seen["end"] = time.time()
    seen["screen"] = type(pilot.app.screen).__name__
    seen["torch_at_first_screen"] = "torch" in sys.modules
    # Then the probe's report filling the screen in (a child process imports torch meanwhile).
    for _ in range(600):
        if pilot.app.state.hardware is not None:
            await pilot.pause()
            seen["report"] = time.time()
            break
        await pilot.pause(0.05)
    pilot.app.exit()

# "fixed": a hardware report handed in (the app's own option for snapshots), so no probe runs: the
# difference to the default run is what the probe's worker costs the first screen.
options = {}
if sys.argv[1:] == ["fixed"]:
    options["hardware"] = {"gpus": [], "cpu_count": 2, "ram_total_mb": 24000, "ram_available_mb": 20000,
                           "disk_free_mb": 100000, "torch_version": "-", "cuda_available": False,
                           "cuda_version": None, "nvml_available": False, "device": "cpu", "warnings": []}
LLMCustomsApp(**options).run(headless=True, auto_pilot=first_screen)
print(json.dumps({"start": start, "imported": imported, "torch_loaded": "torch" in sys.modules, **seen}), flush=True)
"""

CHILD_MODEL = """
import time, json
start = time.time()
import torch
import transformers
# The model and tokenizer classes, so that their import chain (transformers imports much lazily,
# torch.distributed.tensor among it) is counted as importing, not as loading.
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast
imported = time.time()
from llmcustoms.models.manager import ModelManager
from llmcustoms.models.loading import load_tokenizer
path = ModelManager().ensure_embedded()
found = time.time()
tokenizer = load_tokenizer(str(path))
tokenized = time.time()
model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
end = time.time()
print(json.dumps({"start": start, "imported": imported, "found": found, "tokenizer": tokenized, "end": end}))
"""

CHILD_CHAT = """
import time, json, sys
from llmcustoms.chat.session import ChatSession
path = sys.argv[1]
session = ChatSession(path, base_model_path=path)
t = time.perf_counter()
session.load()
loaded = time.perf_counter() - t
firsts, totals = [], []
prompts = ["What is the capital of France?", "Name three colours of the rainbow.",
           "How long is a marathon?", "What does a lighthouse do?"]
for prompt in prompts:
    t = time.perf_counter()
    first = None
    for piece in session.stream(prompt, max_new_tokens=24):
        if first is None and piece.strip():
            first = time.perf_counter() - t
    totals.append(time.perf_counter() - t)
    firsts.append(first if first is not None else float("nan"))
print(json.dumps({"load_s": loaded, "first_token_s": firsts, "answer_s": totals}))
"""


def spawn(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last stdout line (JSON) plus 'spawned' and 'exited' wall times."""
    spawned = time.time()
    proc = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)
    exited = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    out = json.loads(lines[-1])
    out.update(spawned=spawned, exited=exited)
    return out


# --------------------------------------------------------------------------- dashboard overhead


class _Counter:
    """Stands in for the collator: the callback only reads its token counters."""

    tokens_trained = 0
    tokens_seen = 0


def dashboard_cost(steps: int = 300) -> dict[str, float]:
    """Seconds per optimizer step spent in the dashboard's hooks, and per poll of the TUI's tail."""
    from transformers import TrainerControl, TrainerState

    from llmcustoms.runs.events import JsonlEventSink, read_new_events
    from llmcustoms.training.callbacks import EventCallback

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.jsonl"
        sink = JsonlEventSink(path)
        counter = _Counter()
        callback = EventCallback(sink, counter, "cpu")
        state, control = TrainerState(), TrainerControl()
        state.max_steps = steps
        callback.on_train_begin(None, state, control)
        offset, read_s = 0, 0.0
        started = time.perf_counter()
        hook_s = 0.0
        for step in range(1, steps + 1):
            counter.tokens_trained += 1000
            state.global_step = step
            state.epoch = step / steps
            t = time.perf_counter()
            callback.on_step_end(None, state, control)
            callback.on_log(None, state, control, logs={"loss": 2.0 - step / steps, "learning_rate": 1e-4,
                                                         "grad_norm": 0.5})
            hook_s += time.perf_counter() - t
            t = time.perf_counter()
            events, offset = read_new_events(path, offset)  # what the TUI does on each poll
            read_s += time.perf_counter() - t
            assert events, "the step event must be readable at once"
        total = time.perf_counter() - started
        sink.close()
        size = path.stat().st_size
    return {"hook_s_per_step": hook_s / steps, "read_s_per_poll": read_s / steps, "bytes_per_step": size / steps,
            "loop_s": total}


def training_step_time(model_dir: str) -> dict[str, float]:
    """Seconds for one optimizer step of the CPU preset's shape: 2 rows × 256 tokens, accumulation 2."""
    import contextlib

    import torch

    from llmcustoms.hardware.cpu import cpu_bf16_autocast_ok, settle_cpu_training
    from llmcustoms.models.loading import load_for_training

    config = {"device": "cpu", "precision": "fp32", "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05}
    model, _ = load_for_training(model_dir, settle_cpu_training(config))
    model.train()
    bf16 = cpu_bf16_autocast_ok()
    ids = torch.randint(100, 40_000, (2, 256), generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def micro() -> None:
        with autocast:
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()

    micro()  # warm-up
    t = time.perf_counter()
    micro()
    micro()
    step = time.perf_counter() - t
    return {"step_s": step, "bf16": bf16, "tokens": 2 * 2 * 256}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the measurements, print the table, update RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold processes per measurement (default 3)")
    parser.add_argument("--no-write", action="store_true", help="leave benchmarks/RESULTS.md alone")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    args = parser.parse_args(argv)

    from llmcustoms.models.manager import ModelManager

    model_dir = str(ModelManager().ensure_embedded())  # converted once (~20 s) before anything is timed
    load_start = load_average()
    raw: dict[str, Any] = {}

    bare = [spawn(CHILD_BARE) for _ in range(args.repeats)]
    raw["bare_s"] = [b["end"] - b["spawned"] for b in bare]

    imports = [spawn(CHILD_IMPORT) for _ in range(args.repeats)]
    raw["import_process_s"] = [r["end"] - r["spawned"] for r in imports]
    raw["import_only_s"] = [r["end"] - r["start"] for r in imports]
    raw["import_pulls_torch"] = any(r["torch_loaded"] for r in imports)

    tui = [spawn(CHILD_TUI) for _ in range(args.repeats)]
    raw["tui_first_screen_s"] = [r["end"] - r["spawned"] for r in tui]
    raw["tui_import_s"] = [r["imported"] - r["start"] for r in tui]
    raw["tui_process_s"] = [r["exited"] - r["spawned"] for r in tui]
    raw["tui_screen"] = tui[0]["screen"]
    raw["tui_torch_loaded"] = any(r.get("torch_at_first_screen") for r in tui)
    raw["tui_report_s"] = [r["report"] - r["spawned"] for r in tui if "report" in r]
    fixed = [spawn(CHILD_TUI, "fixed") for _ in range(args.repeats)]
    raw["tui_first_screen_no_probe_s"] = [r["end"] - r["spawned"] for r in fixed]

    loads = [spawn(CHILD_MODEL) for _ in range(args.repeats)]
    raw["torch_import_s"] = [r["imported"] - r["start"] for r in loads]
    raw["model_load_s"] = [r["end"] - r["imported"] for r in loads]
    raw["model_weights_s"] = [r["end"] - r["tokenizer"] for r in loads]
    raw["model_process_s"] = [r["end"] - r["spawned"] for r in loads]

    chat = spawn(CHILD_CHAT, model_dir)
    raw["chat_load_s"] = chat["load_s"]
    raw["chat_first_token_s"] = chat["first_token_s"]
    raw["chat_answer_s"] = chat["answer_s"]

    raw["dashboard"] = dashboard_cost()
    raw["train_step"] = training_step_time(model_dir)
    overhead = raw["dashboard"]["hook_s_per_step"] / raw["train_step"]["step_s"]
    poll_share = raw["dashboard"]["read_s_per_poll"] * 4  # the TUI polls 4×/s: CPU seconds per second
    load_end = load_average()

    first_tokens = raw["chat_first_token_s"]
    rows = [
        ["TUI first screen (process spawn → first screen mounted)", _s(raw["tui_first_screen_s"]), "≤ 0.8 s",
         f"of which importing llmcustoms_tui.app {median(raw['tui_import_s']):.2f} s; screen "
         f"{raw['tui_screen']}; whole process incl. exit {median(raw['tui_process_s']):.2f} s; torch imported "
         f"by then: {'yes' if raw['tui_torch_loaded'] else 'no'}"],
        ["TUI hardware report filled in (spawn → probe's report on screen)", _s(raw["tui_report_s"]),
         "(diagnostic)", "the probe runs in a child process (`python -m llmcustoms.hardware.probe`, which "
         "imports torch) while the first screen is already live and answering keys"],
        ["TUI first screen, hardware report handed in (no probe)", _s(raw["tui_first_screen_no_probe_s"]),
         "(diagnostic)", "the same with `LLMCustomsApp(hardware=...)`: the difference is what starting the "
         "hardware probe costs the first screen"],
        ["`import llmcustoms` (whole process)", _s(raw["import_process_s"]), "—",
         f"import alone {median(raw['import_only_s']) * 1000:.0f} ms; bare interpreter "
         f"{median(raw['bare_s']) * 1000:.0f} ms; torch imported: {'YES' if raw['import_pulls_torch'] else 'no'}"],
        ["Embedded model load from cache", _s(raw["model_load_s"]), "≤ 1 s",
         f"weights alone {median(raw['model_weights_s']):.2f} s; importing torch, transformers and the model "
         f"classes first "
         f"{median(raw['torch_import_s']):.2f} s (whole process {median(raw['model_process_s']):.2f} s)"],
        ["Chat first token (CPU, loaded ChatSession)", f"{median(first_tokens[1:]):.3f} s", "≤ 0.5 s",
         f"very first call {first_tokens[0]:.3f} s; all: {', '.join(f'{x:.3f}' for x in first_tokens)}; "
         f"ChatSession.load {raw['chat_load_s']:.2f} s"],
        ["Dashboard overhead per training step", f"{100 * overhead:.3f} %", "≤ 1 %",
         f"{raw['dashboard']['hook_s_per_step'] * 1000:.2f} ms of hooks + event write per step vs a "
         f"{raw['train_step']['step_s']:.2f} s CPU step (2×256 tokens × accumulation 2, bf16 autocast "
         f"{'on' if raw['train_step']['bf16'] else 'off'}); {raw['dashboard']['bytes_per_step']:.0f} bytes/step; "
         f"the TUI's tail costs {raw['dashboard']['read_s_per_poll'] * 1e6:.0f} µs a poll "
         f"({100 * poll_share:.3f} % of a core at 4 polls/s)"],
    ]
    text = "\n".join([
        f"Measured {now()} on {machine()}; load average {load_start} at the start, {load_end} at the end. "
        f"Command: `{command_line()}`. Start-up rows: median of {args.repeats} fresh processes, wall time "
        f"from spawn; the TUI has no exit-after-first-screen hook, so its row is `import llmcustoms_tui.app` "
        f"+ `LLMCustomsApp().run(headless=True)` with a Textual auto-pilot that notes the time once the first "
        f"screen is mounted and its pending messages are handled, then exits.",
        "",
        table(["measurement", "median", "target", "details"], rows),
    ])
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    if not args.no_write:
        write_section("## Start-up", text)
        print("\nupdated benchmarks/RESULTS.md (## Start-up)")
    return 0


def _s(values: list[float]) -> str:
    return f"{median(values):.2f} s (run 1: {values[0]:.2f} s)"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
