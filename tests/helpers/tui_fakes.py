"""Deterministic stand-ins for the TUI tests: a fixed hardware report, scripted runs, a scripted chat.

Only the parts whose output depends on the machine or on random weights are replaced; the app, its
screens and the event-file tailing are the real ones. (No tests here: helpers shared by test_tui*.py.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcustoms_tui.launcher import RunHandle

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmcustoms_tui.backend import ChatSessionLike

#: A GPU box as the hardware screen and the planner see it (no real probing in snapshots).
FIXED_HARDWARE: dict[str, Any] = {
    "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "total_mb": 12288, "free_mb": 11264, "used_mb": 1024}],
    "cpu_count": 8,
    "ram_total_mb": 32768,
    "ram_available_mb": 24576,
    "disk_free_mb": 250000,
    "torch_version": "2.5.1+cu124",
    "cuda_available": True,
    "cuda_version": "12.4",
    "nvml_available": False,
    "device": "cuda",
    "warnings": ["NVML is not installed: GPU memory used by other programs is not shown (pip install nvidia-ml-py)."],
}

RUN_ID = "20250101-120000-smollm2-135m-0001"

#: Held-out questions as run.json's ``knowledge_probes`` holds them (the first is what FakeChatSession knows).
SAMPLE_PROBES: list[dict[str, Any]] = [
    {"fact_id": "harbour.txt:3:0", "question": "Who designed the clockwork pump under Quillhaven harbour?",
     "reference": "The Tide Engine was built by Emeric Dallow in 1841.", "span": "Emeric Dallow",
     "context": "The Tide Engine was built by Emeric Dallow in 1841. It pumps the harbour dry.",
     "trained_phrasings": 3},
    {"fact_id": "festival.txt:1:0", "question": "In which season do Velmorians float paper lanterns?",
     "reference": "The Lantern Festival is held every autumn in Velmoria.", "span": "autumn",
     "context": "The Lantern Festival is held every autumn in Velmoria.", "trained_phrasings": 2},
    {"fact_id": "festival.txt:4:0", "question": "What do the bakers of Velmoria sell at the Lantern Festival?",
     "reference": "Bakers sell honey bread in the market square.", "span": "honey bread",
     "context": "Bakers sell honey bread in the market square.", "trained_phrasings": 0},
]

#: run.json's ``knowledge`` after a run that learned: 22 of 30 held-out facts, the base model 1, open book 25.
SAMPLE_KNOWLEDGE: dict[str, Any] = {
    "questions": 30, "base": 1 / 30, "tuned": 22 / 30, "open_book": 25 / 30, "threshold": 0.6,
    "message": "knows 22 of 30 held-out facts; the base model knew 1 (open book: 25). Knowledge score: 30 of "
               "120 facts held out, each asked in a wording never trained on (6 of them with no training "
               "question at all).",
    "seconds": 12.5, "judge": None,
    "rows": [{**probe, "base": "I do not know.", "base_correct": False, "tuned": probe["reference"],
              "tuned_correct": True, "open_book": probe["reference"], "open_book_correct": True}
             for probe in SAMPLE_PROBES],
}

#: run.json's ``knowledge`` when the text had too few checkable facts (no knowledge event is written).
FEW_FACTS_KNOWLEDGE: dict[str, Any] = {
    "questions": 3, "base": None, "tuned": None, "open_book": None,
    "message": "Too few facts to test (3 checkable; at least 5 are needed): training runs, without a knowledge "
               "score.", "rows": []}


def scripted_events(max_steps: int = 30, upto: int | None = None, finished: bool = True,
                    knowledge: bool = False) -> list[dict[str, Any]]:
    """Events of a plausible run: loss falling, an eval every 10 steps, a checkpoint, then done.

    ``knowledge``: also the dev-question checks every 10 steps and, at the end, the knowledge score
    of SAMPLE_KNOWLEDGE (a ``knowledge`` event, and its numbers on ``done``), as the trainer writes them.
    """
    dev = {10: (2, 10), 20: (5, 20), 30: (5, 20)}  # step → (dev questions right of 8, best step)
    upto = max_steps if upto is None else upto
    t0 = 1_735_732_800.0
    events: list[dict[str, Any]] = [
        {"t": t0, "kind": "start", "step": 0, "max_steps": max_steps, "message": "Training smollm2-135m with the "
         "quality preset on cuda."},
        {"t": t0 + 1, "kind": "eval", "step": 0, "max_steps": max_steps, "loss": 3.2},
    ]
    for step in range(1, upto + 1):
        loss = 1.1 + 2.0 / (1 + 0.25 * step) + (0.08 if step % 3 == 0 else 0.0)
        events.append({"t": t0 + 1 + step, "kind": "step", "step": step, "max_steps": max_steps,
                       "loss": round(loss, 4), "lr": 5e-4 * (1 - step / max_steps) + 1e-6, "tokens_per_s": 1850.0,
                       "vram_used_mb": 2300 + step, "vram_total_mb": 12288,
                       "eta_s": float(max_steps - step) * 1.5})
        if step % 10 == 0:
            events.append({"t": t0 + 1.5 + step, "kind": "eval", "step": step, "max_steps": max_steps,
                           "loss": round(1.3 + 1.2 / (1 + 0.2 * step), 4)})
        if knowledge and (step % 10 == 0 or step == max_steps):
            right, best = dev.get(step, (5, min(step, 20)))
            events.append({"t": t0 + 1.55 + step, "kind": "knowledge_check", "step": step, "max_steps": max_steps,
                           "dev_score": right / 8, "best_step": best,
                           "message": f"Dev questions at step {step}: {right} of 8 right (best so far at step "
                                      f"{best})."})
        if step == 20:
            events.append({"t": t0 + 1.6 + step, "kind": "checkpoint", "step": step, "max_steps": max_steps,
                           "message": "checkpoint saved at step 20"})
    if finished and upto >= max_steps:
        done: dict[str, Any] = {"t": t0 + 2 + max_steps, "kind": "done", "step": max_steps, "max_steps": max_steps,
                                "eval_loss_before": 3.2, "eval_loss_after": 1.52,
                                "message": "Done: held-out loss 3.200 → 1.520"}
        if knowledge:
            numbers = {k: SAMPLE_KNOWLEDGE[k] for k in ("questions", "base", "tuned", "open_book")}
            events.append({"t": t0 + 1.9 + max_steps, "kind": "knowledge", "step": max_steps, **numbers,
                           "message": "Knowledge: knows 22 of 30 held-out facts; the base model knew 1 "
                                      "(open book: 25)."})
            done.update(knowledge=numbers, message="Done: held-out loss 3.200 → 1.520; knows 22 of 30 held-out "
                                                   "facts; the base model knew 1 (open book: 25)")
        events.append(done)
    return events


def write_run(root: Path, events: list[dict[str, Any]], run_id: str = RUN_ID, status: str = "done",
              adapter: bool = True, knowledge: dict[str, Any] | None = None,
              probes: list[dict[str, Any]] | None = None) -> Path:
    """A run directory as the trainer leaves it: run.json, events.jsonl and (optionally) adapter/.

    ``knowledge`` / ``probes``: run.json's ``knowledge`` and ``knowledge_probes`` (the held-out questions).
    """
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"id": run_id, "status": status, "model": "smollm2-135m", "preset": "quality", "pid": 0,
                            "example_prompts": ["What is the Tide Engine?"]}
    if knowledge is not None:
        data["knowledge"] = knowledge
    if probes is not None:
        data["knowledge_probes"] = probes
    (run_dir / "run.json").write_text(json.dumps(data))
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if adapter:
        (run_dir / "adapter").mkdir(exist_ok=True)
    return run_dir


def _update(run_dir: Path, **fields: Any) -> None:
    data = json.loads((run_dir / "run.json").read_text())
    data.update(fields)
    tmp = run_dir / ".run.json.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(run_dir / "run.json")  # atomic, as the core writes it: the dashboard reads it meanwhile


def _set_status(run_dir: Path, status: str) -> None:
    _update(run_dir, status=status)


class ScriptedLauncher:
    """Starts a fake in-process run that appends scripted events to a real events.jsonl, step by step.

    ``gate`` (optional) makes each step wait for the test, so it can watch the dashboard advance.
    ``knowledge``: the run checks dev questions and ends with SAMPLE_KNOWLEDGE in its events and run.json.
    """

    def __init__(self, root: Path, max_steps: int = 6, delay_s: float = 0.05, gate: threading.Semaphore | None = None,
                 knowledge: bool = False):
        self.root = root
        self.max_steps = max_steps
        self.delay_s = delay_s
        self.gate = gate
        self.knowledge = knowledge
        self.fields: dict[str, Any] | None = None

    def start(self, app: Any, fields: dict[str, Any]) -> RunHandle:
        self.fields = fields
        handle = RunHandle(in_process=True, label="scripted")
        events = scripted_events(self.max_steps, knowledge=self.knowledge)

        def run() -> None:
            try:
                run_dir = write_run(self.root, [], status="running", adapter=False,
                                    probes=SAMPLE_PROBES if self.knowledge else None)
                handle.set_run_dir(run_dir)
                with open(run_dir / "events.jsonl", "a", encoding="utf-8") as out:
                    for event in events:
                        if event["kind"] == "step":
                            if self.gate is not None:
                                self.gate.acquire(timeout=10)
                            time.sleep(self.delay_s)
                            if handle.stop_event.is_set():
                                out.write(json.dumps({"kind": "done", "step": event["step"] - 1,
                                                      "max_steps": self.max_steps, "eval_loss_before": 3.2,
                                                      "eval_loss_after": 2.5, "message": "Stopped."}) + "\n")
                                out.flush()
                                (run_dir / "adapter").mkdir()
                                _set_status(run_dir, "stopped")
                                return
                        if event["kind"] == "knowledge":
                            _update(run_dir, knowledge=SAMPLE_KNOWLEDGE)  # the trainer writes run.json first
                        if event["kind"] == "done":
                            (run_dir / "adapter").mkdir()
                            _set_status(run_dir, "done")
                        out.write(json.dumps(event) + "\n")
                        out.flush()
            finally:
                handle.ended.set()

        threading.Thread(target=run, daemon=True, name="scripted-run").start()
        return handle


class FakeChatSession:
    """Answers word by word; the base model answers differently from the tuned one."""

    example_prompts = ["What is the Tide Engine?", "Who built the Tide Engine?", "When is the Lantern Festival?"]
    description = f"{RUN_ID} · smollm2-135m + adapter"
    has_adapter = True  # the tuned model and the base one, as with a run that saved its adapter

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.closed = False

    def stream(self, prompt: str, tuned: bool = True, max_new_tokens: int = 200) -> Iterator[str]:
        if tuned:
            answer = "The Tide Engine is the great clockwork pump under Quillhaven harbour, built by Emeric Dallow."
        else:
            answer = "I am not sure what the Tide Engine is; it may be a machine that uses the tides."
        for word in answer.split(" "):
            yield word + " "

    def close(self) -> None:
        self.closed = True


if TYPE_CHECKING:  # mypy checks the scripted chat against what the chat screen uses of the core's ChatSession
    _SCRIPTED_CHAT: Callable[[str], ChatSessionLike] = FakeChatSession


#: A document of the Tide Engine: what FakeChatSession's tuned answer says, so the chat shows its support.
HARBOUR_TEXT = """Quillhaven harbour

The harbour of Quillhaven shelters forty fishing boats.

The Tide Engine is the great clockwork pump under Quillhaven harbour. It was built by Emeric Dallow in 1841.

At low tide the Tide Engine pumps the dry dock empty.
"""


def add_documents(run_dir: Path, folder: Path, text: str = HARBOUR_TEXT) -> Path:
    """Write ``text`` as ``folder/harbour.txt`` and record ``folder`` as the run's documents (run.json's data_path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harbour.txt").write_text(text, encoding="utf-8")
    _update(run_dir, data_path=str(folder))
    return folder
