"""The training run, top to bottom: data → model → LoRA → evaluate → train → evaluate → save.

``run_training(TrainRequest(...))`` is the one entry point used by the CLI, ``FineTuner``, the
detached worker (``worker.py``) and so the TUI. Everything it does is reported as events
(``events.py``) to ``runs/<id>/events.jsonl`` and to an optional extra sink; ``run.json`` holds the
run's status, pid, heartbeat and results.

A run survives what a long run meets: the process owns its directory through a lock (two
processes never write one run); checkpoints are crash-safe and ``resume=True`` continues from the
newest complete one; a CUDA out-of-memory error backs off to smaller settings and goes on
(``oom.py``); health rules and a watchdog thread send warnings (``health.py``).

The steps before and around training live one module each: ``request.py`` (what is asked),
``choices.py`` (device, model, config), ``prepare.py`` (the data), ``arguments.py`` (TrainingArguments),
``adapter_files.py`` (saving and restoring the adapter), ``knowledge_check.py`` (the score).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcustoms.data.packing import PackedCollator
from llmcustoms.errors import (
    DataError,
    InputError,
    LLMCustomsError,
    OutOfMemoryError,
    TrainingError,
)
from llmcustoms.hardware.cpu import settle_cpu_training
from llmcustoms.models.loading import load_for_training
from llmcustoms.planning.budget import CHECKPOINT_EVERY_S, measure_step_seconds, plan_budget, remember_speed
from llmcustoms.planning.memory import allocator_cap_fraction
from llmcustoms.planning.presets import check_preset
from llmcustoms.runs.events import EventSink, FanoutSink, JsonlEventSink, make_event
from llmcustoms.runs.health import HealthLimits, HealthMonitor, Pulse, Watchdog
from llmcustoms.runs.rundir import RunDir, RunLock, process_start_time
from llmcustoms.training import checkpoints
from llmcustoms.training.adapter_files import (
    adapter_snapshot,
    load_checkpoint_adapter,
    restore_adapter,
    save_adapter,
)
from llmcustoms.training.arguments import training_arguments
from llmcustoms.training.choices import (
    RunChoices,
    choose_device,
    request_settings,
    resolve_choices,
    resolve_model,
    resolve_train_config,
)
from llmcustoms.training.knowledge_check import (
    knowledge_after,
    knowledge_before,
    knowledge_fields,
    stored_general,
)
from llmcustoms.training.oom import free_device_memory, give_up_message, is_oom, next_backoff
from llmcustoms.training.prepare import (
    ABLATIONS,
    MAX_EVAL_EXAMPLES,
    ExampleSplit,
    PreparedData,
    benchmark_ablation,
    folder_report,
    generation_plan,
    prepare_data,
    send_permission,
    split_training_examples,
)
from llmcustoms.training.replay import ReplaySource
from llmcustoms.training.request import (
    ALLOW_SEND_HINT,
    LOCAL_FIELDS,
    TrainRequest,
    TrainResult,
    request_from_run,
)
from llmcustoms.training.tracking import (
    log_final_scalars,
    point_tensorboard_at_run,
    resolve_report_to,
    where_data_goes,
)
from llmcustoms.utils.config import as_settings, check_max_steps
from llmcustoms.utils.logger import get_logger

# The request types and the steps before training live in their own modules; these names stay importable
# from here, where the seed's callers (and users' scripts) import them.
__all__ = ["ABLATIONS", "ALLOW_SEND_HINT", "LOCAL_FIELDS", "MAX_EVAL_EXAMPLES", "ExampleSplit", "PreparedData",
           "RunChoices", "RunSetup", "TrainRequest", "TrainResult", "check_resumable", "choose_device",
           "folder_report", "generation_plan", "prepare_data", "request_from_run", "resolve_choices",
           "resolve_model", "resolve_train_config", "resume_training", "run_training", "save_adapter",
           "send_permission", "split_training_examples", "training_arguments"]

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings

log = get_logger("llmcustoms.training")


# -- a run from start to end -----------------------------------------------------------------------
@dataclass
class RunSetup:
    """Everything decided before training starts: where, which model, on what, with which settings."""

    run: RunDir
    model_name: str
    model_path: str
    device: str
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    early_events: list[dict[str, Any]] = field(default_factory=list)  # from before the run directory existed
    resume: bool = False


def _fresh_setup(request: TrainRequest, run_dir: RunDir | None) -> RunSetup:
    """Resolve device, model and settings; create the run directory unless one was given (detached)."""
    early: list[dict[str, Any]] = []
    choices = resolve_choices(request, early.append)
    device, model_name, model_path = choices.device, choices.model_name, choices.model_path
    config, notes = choices.config, choices.notes
    fields_ = {"model": model_name, "model_path": model_path, "preset": request.preset,
               "data_path": os.path.abspath(request.data_path), "config": config, "request": request.to_dict(),
               "device": device}
    if run_dir is None:
        run = RunDir.create(model_name, root=request.output_dir, status="created", **fields_)
    else:
        run = run_dir
        run.update(**fields_)
    return RunSetup(run, model_name, model_path, device, config, notes, early)


def check_resumable(run: RunDir) -> dict[str, Any]:
    """run.json of a run that can be resumed; InputError with the reason otherwise (cheap: no torch)."""

    data = run.read()
    if data.get("status") == "done":
        raise InputError(f"Run {run.id} already finished: its adapter is in {data.get('adapter_path')}. "
                         "Start a new run with `llmcustoms train` to train more.")
    if not data.get("request"):
        raise InputError(f"Run {run.id} records no training request: there is nothing to resume.")
    return data


def _resume_setup(run: RunDir) -> RunSetup:
    """The settings a run was started with (a resume must not re-plan them: the checkpoint depends on them)."""
    data = check_resumable(run)
    if not data.get("config") or not data.get("model_path"):
        # It died before choosing its model and settings (e.g. while downloading): start it properly.
        request = request_from_run(run)
        return _fresh_setup(request, run)
    device = data.get("device", "cpu")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise TrainingError(f"Run {run.id} trained on a CUDA GPU and none is usable here: resume it on a "
                                "machine with a GPU.")
    return RunSetup(run, data.get("model", "model"), data["model_path"], device, dict(data["config"]), resume=True)


def run_training(request: TrainRequest, sink: EventSink | None = None, stop: threading.Event | None = None,
                 on_run: Callable[[RunDir], None] | None = None, *, run_dir: RunDir | None = None,
                 resume: bool = False) -> TrainResult:
    """Train a LoRA adapter on ``request.data_path``; returns when the run is done, stopped or failed.

    ``run_dir``: train into this existing run directory (a detached worker's) instead of a new one.
    ``resume``: continue ``run_dir`` from its newest complete checkpoint to the same final step, with
    the settings it was started with; refused (RunBusyError) while another process trains it.
    """

    request.settings = as_settings(request.settings)  # read once here when the caller did not
    request.preset = check_preset(request.preset)
    if not resume:
        request.max_steps = check_max_steps(request.max_steps)
        if request.max_steps is None:  # MAX_STEPS (environment or .env) caps a run that names no steps
            request.max_steps = request.settings.max_steps
        # A named tracker that is not installed is a sentence now, before any model loads (tracking.py).
        request.report_to = resolve_report_to(request.report_to or request.settings.report_to)
    stop = stop if stop is not None else threading.Event()
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir to resume")
    if not resume:
        # A bad folder is a sentence now, before a model is downloaded or a run directory made.
        folder_report(request).raise_if_blocked()
    setup = None if resume else _fresh_setup(request, run_dir)
    run = run_dir if setup is None else setup.run
    assert run is not None, "a resume is given its run directory (resume_training)"

    from llmcustoms.training.ranks import is_secondary

    # From here on this process alone writes the run (in multi-process training: rank 0 alone).
    with nullcontext() if is_secondary() else RunLock(run):
        if setup is None:
            setup = _resume_setup(run)
        return _owned_run(request, setup, sink, stop, on_run)


def resume_training(run_ref: str | os.PathLike[str] | RunDir, sink: EventSink | None = None,
                    stop: threading.Event | None = None, callbacks: list[Any] | None = None,
                    settings: Settings | None = None) -> TrainResult:
    """Resume run ``run_ref`` in this process (``llmcustoms resume RUN``; detached: ``detach.resume_run``).

    ``settings``: the ones the entry point read (None: ``run_training`` reads them)."""
    run = run_ref if isinstance(run_ref, RunDir) else RunDir.open(run_ref)
    request = request_from_run(run)
    request.callbacks = list(callbacks or [])
    request.settings = settings
    return run_training(request, sink=sink, stop=stop, run_dir=run, resume=True)


def _owned_run(request: TrainRequest, setup: RunSetup, sink: EventSink | None, stop: threading.Event,
               on_run: Callable[[RunDir], None] | None) -> TrainResult:
    """The run, with its lock held: events, heartbeat and health watch around ``_train``."""

    started = time.time()
    run = setup.run
    from llmcustoms.training.ranks import is_secondary, world_size

    file_sink = None if is_secondary() else JsonlEventSink(run.events_path)
    emit = FanoutSink(file_sink, sink)
    run.stop_path.unlink(missing_ok=True)  # a stop asked of an earlier process is not meant for this one
    previous = run.read()
    run.update(status="running", pid=os.getpid(), pid_started_at=process_start_time(), host=socket.gethostname(),
               heartbeat=round(time.time(), 3), error=None, finished_at=None,
               resumes=int(previous.get("resumes", 0)) + (1 if setup.resume else 0))
    if on_run is not None:
        on_run(run)
    for event in setup.early_events:
        emit(event)
    for note in setup.notes:
        emit(make_event("info", message=note))
    tracked = where_data_goes(request.report_to or "none", run.path)
    if tracked and not setup.resume:
        emit(make_event("info", message=tracked))
    if not setup.resume:
        emit(make_event("start", step=0, max_steps=setup.config["max_steps"], model=setup.model_name,
                        preset=request.preset, device=setup.device, precision=setup.config.get("precision"),
                        run_dir=str(run.path), pid=os.getpid(), world_size=world_size(),
                        message=f"Training {setup.model_name} with the {request.preset} preset on {setup.device}."))
    pulse = Pulse()
    monitor = HealthMonitor(emit, HealthLimits.from_config(setup.config), run.id)
    watchdog = Watchdog(run, pulse, monitor, stop, on_stop_file=lambda: emit(make_event(
        "info", message="Stop requested: finishing this step, then saving a checkpoint and the adapter."))).start()
    try:
        result = _train(request, setup, emit, stop, monitor, pulse)
        run.update(timings={**(run.read().get("timings") or {}), "total_s": round(time.time() - started, 2)})
        return result
    except KeyboardInterrupt:
        from llmcustoms.training.interrupts import TrainingInterrupted, resume_hint

        step = pulse.step
        latest = checkpoints.latest_complete(run.checkpoints_dir)
        message = resume_hint(run.id, step, checkpoints.checkpoint_step(latest) if latest else None)
        _record_end(run, status="interrupted", finished_at=time.time())
        emit(make_event("error", step=step, message=message))
        raise TrainingInterrupted(message, run.id, step) from None
    except Exception as error:
        friendly = _friendly_error(error)
        _record_end(run, status="failed", error=str(friendly), finished_at=time.time())
        emit(make_event("error", step=pulse.step, message=str(friendly)))
        if friendly is error:
            raise
        raise friendly from error
    finally:
        watchdog.close()
        if file_sink is not None:
            file_sink.close()
        free_device_memory()


def _record_end(run: RunDir, **fields: Any) -> None:
    """How the run ended, into run.json; a disk too full for even that must not hide the error itself."""
    try:
        run.update(**fields)
    except OSError as error:
        log.warning("could not record the run's end in %s: %s", run.run_json, error)


def _train(request: TrainRequest, setup: RunSetup, emit: EventSink, stop: threading.Event, monitor, pulse
           ) -> TrainResult:
    """Load, prepare, evaluate, train (backing off on out-of-memory), evaluate, save the adapter."""
    import torch

    from llmcustoms.training.callbacks import EventCallback

    run, config, device = setup.run, setup.config, setup.device
    info: Callable[[str], None] = lambda message: emit(make_event("info", message=message))  # noqa: E731
    torch.manual_seed(request.seed)
    settings = request_settings(request)  # run_training put the entry's there
    if device == "cuda" and settings.max_vram_gb:
        # MAX_VRAM_GB: behave like a smaller card, so the plan for that budget is what really runs.

        total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
        torch.cuda.set_per_process_memory_fraction(allocator_cap_fraction(settings.max_vram_gb, total_mb))

    # Threads and bf16 as they will really run on this CPU (the GPU's config passes through unchanged).
    model, tokenizer = load_for_training(setup.model_path, settle_cpu_training(config))
    replay = _replay_source(request, setup, model, tokenizer, info)
    data = prepare_data(request, tokenizer, int(config["max_seq_len"]), info,
                        warn=lambda message: emit(make_event("warning", message=message)),
                        replay=replay, replay_share=float(config.get("replay_share", 0.0)))
    recorded = run.read()
    if setup.resume and recorded.get("train_rows") not in (None, len(data.train_rows)):
        emit(make_event("warning", health="data_changed", message=(
            f"The data folder changed since the run started ({recorded.get('train_rows')} → "
            f"{len(data.train_rows)} training rows): the resumed run continues on the new data.")))
    run.update(train_examples=data.train_examples, eval_examples=data.eval_examples, qa_mode=data.qa_mode,
               replay_examples=data.replay_examples,
               example_prompts=data.example_prompts, train_rows=len(data.train_rows))

    collator = PackedCollator(tokenizer.pad_token_id)
    collator.attach(model)
    callback = EventCallback(emit, collator, device, stop, monitor=monitor, pulse=pulse)
    initial_adapter = adapter_snapshot(model)  # to start over cleanly after an OOM before any checkpoint

    checkpoint: Path | None = None
    if setup.resume:
        checkpoint = checkpoints.latest_complete(run.checkpoints_dir)
        checkpoints.discard_incomplete(run.checkpoints_dir)
        resumed_at = (checkpoints.checkpoint_step(checkpoint) or 0) if checkpoint else 0
        emit(make_event("resume", step=resumed_at, max_steps=config["max_steps"], pid=os.getpid(),
                        checkpoint=str(checkpoint) if checkpoint else None,
                        message=(f"Resuming from the checkpoint at step {resumed_at}." if checkpoint else
                                 "No complete checkpoint yet: training again from step 0.")))
    else:
        checkpoints.discard_incomplete(run.checkpoints_dir)

    config["report_to"] = request.report_to or "none"  # resolved in run_training; in run.json's request too
    trainer = _build_trainer(model, data, collator, callback, config, run, device, emit, request.callbacks)
    if not setup.resume and config.get("budget_by_data") and request.max_steps is None:
        _set_budget(trainer, data, config, run, emit)
        from llmcustoms.training.time_cap import TimeCap

        trainer.add_callback(TimeCap(float(config.get("budget_minutes") or 10.0),
                                     float(config["seconds_per_step_measured"]), emit))
    score_before = knowledge_before(model, tokenizer, data, run, setup.resume, emit)
    watch = None
    if not setup.resume and score_before is not None and data.knowledge.dev_probes \
            and config.get("knowledge_watch", True) and benchmark_ablation(request) != "no_watch":
        from llmcustoms.training.knowledge_watch import KnowledgeWatch

        rows_per_step = int(config["per_device_train_batch_size"]) * int(config["gradient_accumulation_steps"])
        per_epoch = max(1, math.ceil(len(data.train_rows) / rows_per_step))
        every = max(1, min(per_epoch, int(config["max_steps"]) // 4 or 1))
        watch = KnowledgeWatch(model, tokenizer, data.knowledge.dev_probes, every=every, emit=emit, patience=2,
                               min_steps=min(int(config["max_steps"]), 2 * per_epoch))
        trainer.add_callback(watch)
    eval_before = recorded.get("eval_loss_before") if setup.resume else None
    if eval_before is None:
        eval_before = _eval_loss(trainer)
        run.update(eval_loss_before=eval_before)

    finished_before = bool(setup.resume and checkpoint is not None
                           and (checkpoints.checkpoint_step(checkpoint) or 0) >= int(config["max_steps"]))
    # A stop asked before the first step (during the first evaluation): no training, end as stopped.
    stopped_before = stop.is_set() and not finished_before
    if stopped_before:
        callback.stopped_by_user = True
    if finished_before or (stopped_before and checkpoint is not None):
        # It had trained every step and died while saving the end (a kill during the final save), or it is
        # stopped before going on: load the last checkpoint's weights, never stepping past max_steps.
        assert checkpoint is not None  # finished_before needs one, and so does this branch when stopped
        load_checkpoint_adapter(model, checkpoint)
        trainer.state.global_step = int(checkpoints.checkpoint_step(checkpoint) or 0)
    while not (finished_before or stopped_before):
        out_of_memory = False
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except KeyboardInterrupt:
            _checkpoint_on_interrupt(trainer, run, emit)
            raise
        except Exception as error:  # noqa: BLE001 - only OOM is handled here, the rest re-raised
            if not is_oom(error):
                raise
            out_of_memory = True
        if not out_of_memory:
            break
        # Outside the except block, so the traceback no longer pins the failed step's tensors.
        trainer = None
        model.zero_grad(set_to_none=True)
        collator.reset()  # batches fetched for the failed step will never be trained on
        free_device_memory()
        checkpoint, data = _back_off(request, setup, data, tokenizer, model, initial_adapter, pulse, emit, info)
        trainer = _build_trainer(model, data, collator, callback, config, run, device, emit, request.callbacks)

    steps = trainer.state.global_step
    restored = False
    if watch is not None and callback.nonfinite_step is None and not callback.stopped_by_user:
        watch.finish(steps)
        restored = watch.best_step is not None and watch.best_step != steps
        run.update(knowledge_checks=watch.history, best_step=watch.best_step, stopped_early=watch.stopped_early)
    if callback.nonfinite_step is not None:
        raise TrainingError(f"The loss became NaN or infinite at step {callback.nonfinite_step}, so training "
                            f"stopped: try a lower learning rate (it was {float(config['learning_rate']):g}) or "
                            "the bestaccuracy preset.")
    if stopped_before:
        eval_after = None  # nothing was trained since the evaluation the stop ended
    elif not restored and callback.last_eval_step == steps and callback.last_eval_loss is not None \
            and math.isfinite(callback.last_eval_loss):
        eval_after = callback.last_eval_loss  # the scheduled evaluation already ran at the last step
    else:
        eval_after = _eval_loss(trainer)
    from llmcustoms.training.ranks import is_secondary

    adapter = str(run.adapter_dir) if is_secondary() else save_adapter(trainer.model, tokenizer, run)
    status = "stopped" if callback.stopped_by_user else "done"
    knowledge = knowledge_after(trainer.model, tokenizer, data, None if stopped_before else score_before, run,
                                 emit, steps)
    if knowledge is not None and not is_secondary():
        log_final_scalars(trainer, {f"knowledge/{k}": getattr(knowledge, k, None)
                                    for k in ("base", "tuned", "open_book")}, steps)
    run.update(status=status, eval_loss_after=eval_after, adapter_path=adapter, steps=steps,
               finished_at=time.time())
    emit(make_event("done", step=steps, max_steps=config["max_steps"], status=status, eval_loss_before=eval_before,
                    eval_loss_after=eval_after, adapter_path=adapter,
                    knowledge=knowledge_fields(knowledge, stored_general(run) if knowledge is not None else None),
                    message=f"{'Stopped' if status == 'stopped' else 'Done'}: held-out loss "
                            f"{_fmt(eval_before)} → {_fmt(eval_after)}"
                            + (f"; {knowledge.headline()}" if knowledge is not None else "")
                            + f"; adapter in {adapter}"))
    return TrainResult(run, adapter, eval_before, eval_after, steps, status, setup.notes)


def _set_budget(trainer, data: PreparedData, config: dict[str, Any], run: RunDir, emit: EventSink) -> None:
    """Steps from the data and the measured speed (CPU): passes over the rows, capped by the preset's minutes."""

    micro, accumulation = int(config["per_device_train_batch_size"]), int(config["gradient_accumulation_steps"])
    seconds = measure_step_seconds(trainer, data.train_rows, micro, accumulation)
    budget = plan_budget(len(data.train_rows), micro * accumulation, float(config.get("budget_epochs", 6.0)),
                         seconds, config.get("budget_minutes"))
    steps = budget.steps
    save_every = max(1, min(steps, int(CHECKPOINT_EVERY_S / max(seconds, 1e-3))))
    config.update(max_steps=steps, save_steps=save_every, eval_steps=max(1, min(steps, 2 * budget.steps_per_epoch)),
                  seconds_per_step_measured=round(seconds, 3))
    args = trainer.args
    args.max_steps, args.save_steps, args.eval_steps = steps, config["save_steps"], config["eval_steps"]
    args.warmup_steps = int(math.ceil(steps * float(config.get("warmup_ratio", 0.0))))
    step_tokens = sum(len(r["input_ids"]) for r in data.train_rows[: micro * accumulation])

    remember_speed(run.read().get("model", "model"), "cpu", step_tokens / max(seconds, 1e-6))
    run.update(config=config, budget={"steps": steps, "epochs": round(budget.epochs, 2), "seconds_per_step":
                                      round(seconds, 3), "capped_by_time": budget.capped_by_time,
                                      "message": budget.message})
    emit(make_event("info", step=0, max_steps=steps, eta_s=round(steps * seconds, 1), message=budget.message))


def _build_trainer(model, data: PreparedData, collator, callback, config: dict[str, Any], run: RunDir,
                   device: str, emit: EventSink, extra_callbacks: list[Any]):
    from transformers import PrinterCallback

    from llmcustoms.training.interrupts import StepBoundary
    from llmcustoms.training.ranks import StopTogether, world_size
    from llmcustoms.training.run_trainer import RunTrainer
    from llmcustoms.training.wall_clock import WallClockCheckpoint

    single = world_size() == 1
    together = [] if single else [StopTogether()]  # after the callbacks that may ask to stop
    # One process alone may save on its own clock or leave an evaluation early: ranks must agree on both.
    clock = [WallClockCheckpoint()] if single else []
    callback.stop_evaluation = single
    trainer = RunTrainer(model=model, args=training_arguments(config, run, device), train_dataset=data.train_rows,
                         eval_dataset=data.eval_rows, data_collator=collator,
                         callbacks=[StepBoundary(), callback, *clock, *extra_callbacks, *together], emit=emit)
    trainer.remove_callback(PrinterCallback)  # our events replace its printed dicts
    point_tensorboard_at_run(trainer, run.path, callback)  # RUN/tensorboard, before the first evaluation logs
    return trainer


def _replay_source(request: TrainRequest, setup: RunSetup, model, tokenizer, info: Callable[[str], None]
                   ) -> ReplaySource | None:
    """The base model's answers to the replay requests (cached per model), or None when the run's
    ``replay_share`` is 0 or the knowledge benchmark's ``no_replay`` ablation is on."""
    if float(setup.config.get("replay_share", 0.0)) <= 0 or benchmark_ablation(request) == "no_replay":
        return None
    return ReplaySource(model, tokenizer, setup.model_path, on_message=info)


def _back_off(request: TrainRequest, setup: RunSetup, data: PreparedData, tokenizer, model, initial_adapter,
              pulse, emit: EventSink, info: Callable[[str], None]) -> tuple[Path | None, PreparedData]:
    """After a training OOM: smaller settings, the checkpoint to go on from, and the data re-packed if needed."""

    run, config = setup.run, setup.config
    backoff = next_backoff(config)
    if backoff is None:
        raise OutOfMemoryError(give_up_message(config, setup.model_name))
    config.update(backoff.after)
    run.update(config=config)
    if backoff.after["max_seq_len"] != backoff.before["max_seq_len"]:
        try:
            data = prepare_data(request, tokenizer, int(config["max_seq_len"]), info,
                                replay=_replay_source(request, setup, model, tokenizer, info),
                                replay_share=float(config.get("replay_share", 0.0)))
        except DataError:  # the examples do not survive shorter sequences: nothing smaller is left
            config.update(backoff.before)
            raise OutOfMemoryError(give_up_message(config, setup.model_name)) from None
    checkpoint = checkpoints.latest_complete(run.checkpoints_dir)
    checkpoints.discard_incomplete(run.checkpoints_dir)
    if checkpoint is None:
        restore_adapter(model, initial_adapter)  # no checkpoint yet: start over from the untrained adapter
    resumed_at = (checkpoints.checkpoint_step(checkpoint) or 0) if checkpoint else 0
    emit(make_event("oom_retry", step=pulse.step, phase="train", resume_step=resumed_at, **backoff.event_fields(),
                    message=f"Out of memory at step {pulse.step + 1}: {backoff.message}; going on from "
                            f"{'the checkpoint at step ' + str(resumed_at) if checkpoint else 'the start'}."))
    return checkpoint, data


def _checkpoint_on_interrupt(trainer, run: RunDir, emit: EventSink) -> None:
    """After a hard Ctrl+C in training: a checkpoint of the last finished step, when the state is one.

    Not when the interrupt fell inside an optimizer step (weights and step counter disagree), before the
    first step, or when that step's checkpoint is already complete. A second interrupt here leaves a
    half-written folder, which the next resume discards.
    """
    from llmcustoms.training.interrupts import StepBoundary
    from llmcustoms.training.ranks import is_secondary

    step = int(trainer.state.global_step or 0)
    boundary = next((c for c in trainer.callback_handler.callbacks if isinstance(c, StepBoundary)), None)
    if is_secondary() or step == 0 or boundary is None or not boundary.consistent:
        return
    folder = run.checkpoints_dir / f"checkpoint-{step}"
    if checkpoints.is_complete(folder):
        return
    try:
        trainer._save_checkpoint(trainer.model, trial=None)
    except Exception as error:  # noqa: BLE001 - the interrupt is what the user meets; say why nothing was kept
        emit(make_event("warning", step=step, message=f"No checkpoint could be saved at the interrupt ({error})."))
        return
    emit(make_event("checkpoint", step=step, max_steps=trainer.state.max_steps,
                    message=f"checkpoint saved at step {step} (interrupted)"))


def _eval_loss(trainer) -> float | None:
    """The held-out loss; None when evaluation was skipped (OOM at batch 1) or gave NaN/inf."""
    loss = trainer.evaluate().get("eval_loss")
    return float(loss) if loss is not None and math.isfinite(float(loss)) else None


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.3f}"


def _friendly_error(error: Exception) -> Exception:
    if isinstance(error, LLMCustomsError):
        return error
    if is_oom(error):
        return OutOfMemoryError("The GPU ran out of memory: choose the highspeed preset, a smaller model, "
                                "or 4-bit training.")
    return error
