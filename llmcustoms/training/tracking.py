"""Experiment tracking: which tracker a run reports to (transformers' own integrations), checked early.

TensorBoard writes event files into the run folder (``RUN/tensorboard``) and nothing leaves the machine, so
it is the default whenever the ``tensorboard`` package is installed. W&B and MLflow are used only when named
(``--report-to``, ``REPORT_TO``), because they may send the metrics elsewhere; the run then says where.
A tracker that is named but not installed is one sentence before any model loads.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from llmcustoms.errors import ConfigError

#: The trackers a run can report to (``none``: no tracker).
TRACKERS = ("tensorboard", "wandb", "mlflow", "none")
#: The package each tracker needs, as pip names it.
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
#: The folder of a run that holds its TensorBoard event files.
TENSORBOARD_DIR = "tensorboard"


def tracker_installed(name: str) -> bool:
    """True when ``name``'s package can be imported here (``none`` always is)."""
    return name == "none" or importlib.util.find_spec(_PACKAGES[name]) is not None


def default_tracker() -> str:
    """``tensorboard`` when the package is installed (local files only), ``none`` otherwise."""
    return "tensorboard" if tracker_installed("tensorboard") else "none"


def resolve_report_to(name: str | None) -> str:
    """The tracker a run reports to: ``name`` checked (ConfigError with one sentence), or the default."""
    if name is None or not str(name).strip():
        return default_tracker()
    choice = str(name).strip().lower()
    if choice not in TRACKERS:
        raise ConfigError(f"--report-to (REPORT_TO) must be one of {', '.join(TRACKERS)}, not {name!r}.")
    if not tracker_installed(choice):
        raise ConfigError(f"--report-to {choice} needs the {_PACKAGES[choice]} package, which is not installed: "
                          f"install it (pip install {_PACKAGES[choice]}) or use --report-to none.")
    return choice


def tensorboard_dir(run_path: str | os.PathLike[str]) -> Path:
    """Where a run's TensorBoard event files go."""
    return Path(run_path) / TENSORBOARD_DIR


def where_data_goes(name: str, run_path: str | os.PathLike[str]) -> str | None:
    """One sentence on where ``name`` puts the metrics (None for ``none``)."""
    if name == "tensorboard":
        return f"Metrics for TensorBoard in {tensorboard_dir(run_path)} (this machine only)."
    if name == "wandb":
        project = os.environ.get("WANDB_PROJECT") or "huggingface"
        where = "stays in ./wandb on this machine" if os.environ.get("WANDB_MODE") in ("offline", "disabled") \
            else f"goes to Weights & Biases ({os.environ.get('WANDB_BASE_URL') or 'https://api.wandb.ai'})"
        return f"--report-to wandb: this run's metrics and settings (not your text) {where}, project {project}."
    if name == "mlflow":
        uri = os.environ.get("MLFLOW_TRACKING_URI") or "./mlruns (this machine)"
        return f"--report-to mlflow: this run's metrics and settings (not your text) go to MLflow at {uri}."
    return None


#: The per-step measures of ``EventCallback`` that trackers get next to transformers' loss and learning rate.
STEP_MEASURES = ("tokens_per_s", "step_time_s", "ram_used_mb", "vram_used_mb", "vram_peak_mb")


def _step_measures_callback(events: Any) -> Any:
    """A TrainerCallback that adds ``events``' last step measures (tokens/s, memory) to each training log."""
    from transformers import TrainerCallback

    class StepMeasures(TrainerCallback):  # type: ignore[misc]
        """Runs just before the trackers' callbacks: they then write these measures with the loss."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> Any:
            pending = getattr(events, "_pending", None) or {}
            if logs is not None and "loss" in logs and pending.get("step") == state.global_step:
                logs.update({f"perf/{k}": pending[k] for k in STEP_MEASURES
                             if isinstance(pending.get(k), (int, float))})
            return control

    return StepMeasures()


def point_tensorboard_at_run(trainer: Any, run_path: str | os.PathLike[str], events: Any = None) -> None:
    """Send transformers' TensorBoardCallback's files to ``RUN/tensorboard`` (set before its first log).

    transformers 5 reads the folder from TENSORBOARD_LOGGING_DIR or defaults under ``output_dir`` (the
    checkpoints); setting the callback's own attribute keeps the process environment untouched. With
    ``events`` (the run's EventCallback) the trackers also get its tokens/s and memory each step: they are
    moved after a small callback that adds those to the log (ours run after transformers' by default).
    """
    trackers = [c for c in trainer.callback_handler.callbacks
                if type(c).__module__.startswith("transformers.integrations")]
    for callback in trackers:
        if type(callback).__name__ == "TensorBoardCallback" and callback.tb_writer is None:
            callback.logging_dir = str(tensorboard_dir(run_path))
    if events is not None and trackers:
        for callback in trackers:
            trainer.callback_handler.remove_callback(callback)
        trainer.add_callback(_step_measures_callback(events))
        for callback in trackers:
            trainer.add_callback(callback)


def log_final_scalars(trainer: Any, values: dict[str, float | None], step: int) -> None:
    """The end-of-run scores (the knowledge check) as TensorBoard scalars at ``step``, when TensorBoard is on."""
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ != "TensorBoardCallback" or not callback.logging_dir:
            continue
        if callback.tb_writer is None:
            callback._init_summary_writer(trainer.args)
        if callback.tb_writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)):
                callback.tb_writer.add_scalar(key, float(value), step)
        callback.tb_writer.flush()
