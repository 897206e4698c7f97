"""What a user asks a training run for (``TrainRequest``) and what it gets back (``TrainResult``).

A request is JSON-ready (``to_dict``) and recorded in the run's ``run.json``, so a detached worker or a
resume rebuilds it (``request_from_run``); the process-local fields (``LOCAL_FIELDS``) never go there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from llmcustoms.data.examples import QAMode
from llmcustoms.runs.rundir import RunDir

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings


@dataclass
class TrainRequest:
    """What a user asked for; everything left None is chosen from the hardware and the preset."""

    data_path: str
    model: str = "auto"
    preset: str = "quality"
    max_steps: int | None = None
    output_dir: str | None = None
    qa: QAMode = "auto"  # 'auto' | 'offline' | 'groq'
    seed: int = 42
    device: str | None = None  # 'cpu' | 'cuda' | None (auto)
    save_steps: int | None = None
    eval_steps: int | None = None
    max_seq_len: int | None = None
    # The experiment tracker (training/tracking.py): tensorboard | wandb | mlflow | none; None: REPORT_TO,
    # else tensorboard when installed. Recorded, so a resumed or detached run reports to the same one.
    report_to: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # config overrides (any preset/plan key, health_*)
    # The user agreed, when the run was started, that the folder's text goes to the Q&A server
    # (GROQ_API_KEY with qa auto/groq). Recorded in run.json, so a detached or resumed run keeps it.
    send_consent: bool = False
    # Extra transformers TrainerCallbacks for this process only (tests inject faults with them); never
    # written to run.json, so a resumed or detached run does not get them.
    callbacks: list[Any] = field(default_factory=list, repr=False, compare=False)
    # Asked with the generation plan before any text is sent when ``send_consent`` is not given
    # (True: send); this process only, never written to run.json.
    confirm: Callable[[Any], bool] | None = field(default=None, repr=False, compare=False)
    # The folder's DataReport once this process has read it (``folder_report``), so one run scans the
    # folder once; this process only, never written to run.json.
    data_report: Any = field(default=None, repr=False, compare=False)
    # The settings the entry (CLI, TUI, FineTuner, worker) read once; None: ``run_training`` reads them.
    # This process only, never written to run.json.
    settings: Settings | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the process-local fields, ``LOCAL_FIELDS``)."""

        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name not in LOCAL_FIELDS}


#: TrainRequest fields that live in this process only (never in run.json).
LOCAL_FIELDS = frozenset({"callbacks", "confirm", "data_report", "settings"})
#: How a user lets a run send text to the Q&A server, or keeps it offline.
ALLOW_SEND_HINT = ("to allow it, rerun with --yes (FineTuner: allow_send=True; the wizard asks on its plan "
                   "screen), or use --qa offline to stay offline")


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    run_dir: RunDir
    adapter_path: str | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    steps: int
    status: str
    notes: list[str] = field(default_factory=list)


def request_from_run(run: RunDir) -> TrainRequest:
    """The TrainRequest recorded in run.json (unknown keys from other versions are ignored)."""
    recorded = run.read().get("request") or {}
    known = {f.name for f in fields(TrainRequest)} - LOCAL_FIELDS
    return TrainRequest(**{k: v for k, v in recorded.items() if k in known})
