"""The training run, top to bottom: data → model → LoRA → evaluate → train → evaluate → save.

``run_training(TrainRequest(...))`` is the one entry point used by the CLI, ``FineTuner``, the
detached worker (``worker.py``) and so the TUI. Everything it does is reported as events
(``events.py``) to ``runs/<id>/events.jsonl`` and to an optional extra sink; ``run.json`` holds the
run's status, pid, heartbeat and results.

A run survives what a long run meets: the process owns its directory through a lock (two
processes never write one run); checkpoints are crash-safe and ``resume=True`` continues from the
newest complete one; a CUDA out-of-memory error backs off to smaller settings and goes on
(``oom.py``); health rules and a watchdog thread send warnings (``health.py``).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcustoms.data.examples import build_examples, choose_generator
from llmcustoms.data.packing import PackedCollator, pack_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.split import split_examples
from llmcustoms.data.tokenize import tokenize_examples
from llmcustoms.errors import (
    DataError,
    DiskSpaceError,
    InputError,
    LLMCustomsError,
    OutOfMemoryError,
    TrainingError,
)
from llmcustoms.evaluation.knowledge import KnowledgeReport, score_knowledge
from llmcustoms.evaluation.split import split_facts, training_examples
from llmcustoms.hardware.cpu import cpu_bf16_autocast_ok, settle_cpu_training
from llmcustoms.hardware.detector import HardwareDetector
from llmcustoms.models.availability import model_availability
from llmcustoms.models.loading import load_for_training
from llmcustoms.models.manager import ModelManager
from llmcustoms.models.registry import EMBEDDED_MODEL, find_spec
from llmcustoms.planning.budget import CHECKPOINT_EVERY_S, measure_step_seconds, plan_budget, remember_speed
from llmcustoms.planning.memory import allocator_cap_fraction
from llmcustoms.planning.presets import adapt_for_cpu, check_preset, get_preset
from llmcustoms.qa.progress import GenerationProgress
from llmcustoms.runs.events import EventSink, FanoutSink, JsonlEventSink, make_event
from llmcustoms.runs.health import HealthLimits, HealthMonitor, Pulse, Watchdog
from llmcustoms.runs.rundir import RunDir, RunLock, process_start_time, remove_dead_process_folders
from llmcustoms.training import checkpoints
from llmcustoms.training.disk_full import is_disk_full
from llmcustoms.training.oom import free_device_memory, give_up_message, is_oom, next_backoff
from llmcustoms.utils.config import as_settings, check_max_steps
from llmcustoms.utils.logger import get_logger

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings

log = get_logger("llmcustoms.training")


@dataclass
class TrainRequest:
    """What a user asked for; everything left None is chosen from the hardware and the preset."""

    data_path: str
    model: str = "auto"
    preset: str = "quality"
    max_steps: int | None = None
    output_dir: str | None = None
    qa: str = "auto"
    seed: int = 42
    device: str | None = None  # 'cpu' | 'cuda' | None (auto)
    save_steps: int | None = None
    eval_steps: int | None = None
    max_seq_len: int | None = None
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


@dataclass
class PreparedData:
    """Tokenized, packed train/eval rows and what the user should know about them."""

    train_rows: list[dict[str, list[int]]]
    eval_rows: list[dict[str, list[int]]]
    train_examples: int
    eval_examples: int
    qa_mode: str
    example_prompts: list[str]
    notes: list[str]
    knowledge: Any = None  # evaluation.split.KnowledgeSplit: the held-out facts and their questions


def choose_device(request_device: str | None, force_cpu: bool) -> str:
    """'cuda' when a GPU is usable and not refused, else 'cpu'."""
    if request_device:
        return request_device
    if force_cpu:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_train_config(request: TrainRequest, model_name: str, device: str) -> tuple[dict[str, Any], list[str]]:
    """The preset merged with the hardware plan and the request's overrides, and notes for the user."""

    notes: list[str] = []
    config = get_preset(request.preset)
    plan: dict[str, Any] = {}
    try:
        detector = HardwareDetector(env_config=request.settings)
        vram = detector.detect_gpu_memory() if device == "cuda" else 0
        plan = detector.get_training_config(model_name, vram, preset=request.preset,
                                           seq_len=request.max_seq_len) or {}
    except (ImportError, AttributeError, NotImplementedError):
        plan = {}
    if device == "cpu":
        config, note = adapt_for_cpu(config)
        if note not in str(plan.get("reason", "")):  # the plan's reason already says it: say it once
            notes.append(note)
        config.update({"device": "cpu", "precision": "fp32", "gradient_checkpointing": False})
    else:
        config.update({"device": "cuda", "precision": "bf16", "gradient_checkpointing": False})
    for key in ("precision", "gradient_checkpointing", "optim", "per_device_train_batch_size",
                "gradient_accumulation_steps", "max_seq_len", "memory_estimate_mb", "fits", "reason",
                "bf16_autocast"):
        if key in plan and plan[key] is not None and not (device == "cpu" and key == "precision"):
            config[key] = plan[key]
    if device == "cpu":
        config["precision"] = "fp32"
    if plan.get("reason"):
        notes.append(str(plan["reason"]))
    for key in ("max_steps", "save_steps", "eval_steps", "max_seq_len"):
        value = getattr(request, key)
        if value is not None:
            config[key] = value
    config["save_steps"] = min(config.get("save_steps", config["max_steps"]), config["max_steps"])
    config["eval_steps"] = min(config.get("eval_steps", config["max_steps"]), config["max_steps"])
    config["seed"] = request.seed
    config.update(request.extra)
    return config, notes


def resolve_model(request_model: str, device: str, sink: EventSink,
                  settings: Settings | None = None) -> tuple[str, str]:
    """(name, local folder) for the requested model; 'auto' falls back to the embedded model.

    ``settings``: the caller's (FORCE_CPU, MAX_VRAM_GB for an 'auto' choice on a GPU; read when None)."""

    manager = ModelManager()
    if request_model != "auto":
        return manager.resolve(request_model)
    choice = EMBEDDED_MODEL
    if device == "cuda":
        try:
            detector = HardwareDetector(env_config=settings)
            choice = detector.suggest_model(detector.detect_gpu_memory())
        except (ImportError, AttributeError):
            choice = EMBEDDED_MODEL
    if choice == EMBEDDED_MODEL:
        return manager.resolve(EMBEDDED_MODEL)

    availability = model_availability(choice, manager)
    if not availability.ok:  # no network for the download: say so at once instead of trying three times
        sink(make_event("warning", message=f"{availability.message} Using the embedded {EMBEDDED_MODEL} instead."))
        return manager.resolve(EMBEDDED_MODEL)
    try:
        return manager.resolve(choice)
    except LLMCustomsError as error:
        sink(make_event("warning", message=f"{choice} could not be had ({error}); using the embedded "
                                           f"{EMBEDDED_MODEL} instead."))
        return manager.resolve(EMBEDDED_MODEL)


def send_permission(request: TrainRequest, on_message: Callable[[str], None]) -> Callable[[Any], bool]:
    """The ``confirm(plan)`` given to ``build_examples``: whether the folder's text may go to the Q&A server.

    Yes when nothing would leave the machine (every chunk cached) or the user consented when the run
    started (``request.send_consent``); else ``request.confirm(plan)`` decides; with neither, nothing is
    sent: the run builds offline examples and ``on_message`` says how to allow sending.
    """

    def confirm(plan: Any) -> bool:
        if getattr(plan, "to_send", None) == 0 or request.send_consent:
            return True
        if request.confirm is not None:
            request.send_consent = bool(request.confirm(plan))  # asked once per process, not again on a back-off
            return request.send_consent
        where = getattr(plan, "name", None) or "the Q&A server"
        on_message(f"Not sending your text to {where}: nobody confirmed it ({ALLOW_SEND_HINT}).")
        return False

    return confirm


def folder_report(request: TrainRequest) -> Any:
    """``request``'s folder checked (a ``DataReport``), read on first use and kept on the request.

    Every step of one run (the early check, the generation plan, building examples) asks here, so the
    folder is scanned once per process however many steps look at it.
    """
    if request.data_report is None:

        request.data_report = validate_folder(request.data_path, settings=request.settings)
    return request.data_report


def generation_plan(request: TrainRequest) -> Any | None:
    """What preparing ``request``'s data would send to a Q&A server (its plan, with ``describe()``), or None.

    None when nothing would go to a server (``qa`` offline, no GROQ_API_KEY with ``qa`` auto, or only
    written Q&A in the folder). Sends nothing; reads the folder once. Raises the errors ``prepare_data``
    would (an unusable folder, ``qa`` groq without a key).
    """
    if request.qa == "offline":
        return None

    report = folder_report(request)
    report.raise_if_blocked()
    pairs = int(get_preset(request.preset).get("qa_pairs_per_chunk", 3))
    generator = choose_generator(request.qa, pairs, settings=request.settings)
    if generator.name == "offline" or not callable(getattr(generator, "plan", None)):
        return None
    plans: list[Any] = []

    class _Planned(Exception):
        pass

    def capture(plan: Any) -> bool:
        plans.append(plan)
        raise _Planned  # stop before anything is sent

    try:
        build_examples(report, qa=request.qa, generator=generator, pairs_per_chunk=pairs, confirm=capture)
    except _Planned:
        return plans[0]
    return None


@dataclass
class ExampleSplit:
    """The examples a run trains and evaluates on, before tokenizing, and where they came from."""

    train: list[Any]
    held_out: list[Any]
    built: Any  # data.examples.BuiltExamples: every example made, the Q&A mode, a message
    knowledge: Any  # evaluation.split.KnowledgeSplit: the held-out facts and their questions


def prepare_data(request: TrainRequest, tokenizer, max_seq_len: int, on_message: Callable[[str], None],
                 warn: Callable[[str], None] | None = None) -> PreparedData:
    """Validate the folder, build examples, split, tokenize and pack.

    ``warn`` (default ``on_message``) gets what the user must not miss: files that disappeared or
    became unreadable while the folder was read (the run trains on the others).
    """

    split = split_training_examples(request, on_message, warn)
    train, held_out, built = split.train, split.held_out, split.built
    train_ds = tokenize_examples(train, tokenizer, max_seq_len)
    eval_ds = tokenize_examples(held_out, tokenizer, max_seq_len)
    if len(train_ds) == 0 or len(eval_ds) == 0:

        raise DataError(f"No example keeps part of its answer within {max_seq_len} tokens: allow longer "
                        "sequences (max_seq_len) or write shorter passages.")
    return PreparedData(
        train_rows=pack_examples(train_ds, max_seq_len), eval_rows=pack_examples(eval_ds, max_seq_len),
        train_examples=len(train), eval_examples=len(held_out), qa_mode=built.qa_mode,
        example_prompts=[e.prompt for e in held_out[:5]], notes=[built.message] if built.message else [],
        knowledge=split.knowledge,
    )


def split_training_examples(request: TrainRequest, on_message: Callable[[str], None],
                            warn: Callable[[str], None] | None = None, report: Any | None = None) -> ExampleSplit:
    """Validate the folder, build its examples, hold out facts and examples: what ``prepare_data`` tokenizes.

    ``report``: the folder's ``DataReport`` when the caller has just read it (not read again).
    Raises DataError when too few examples are left to both train and evaluate.
    """

    if report is None:
        report = folder_report(request)
    report.raise_if_blocked()
    for warning in report.warnings:
        on_message(warning)
    pairs = int(get_preset(request.preset).get("qa_pairs_per_chunk", 3))

    def say(message: str) -> None:
        # The sentence naming vanished files is a warning, not one more line of progress.
        if report.vanished and message == report.vanished_sentence():
            (warn or on_message)(message)
        else:
            on_message(message)


    # A line every 10 s while a Q&A server works, saying how long it has been silent (not one per chunk).
    built = build_examples(report, qa=request.qa, pairs_per_chunk=pairs, on_message=say,
                           confirm=send_permission(request, on_message), settings=request.settings,
                           progress=GenerationProgress(on_message, every_s=10.0, tick_s=10.0))

    knowledge = split_facts(built.facts, seed=request.seed)
    on_message(knowledge.summary())
    examples = built.examples
    # Benchmark-only switch (benchmarks/bench_knowledge.py), never set by the product itself.
    ablation = request.extra.get("ablation") or os.environ.get("LLMCUSTOMS_ABLATION")
    if ablation == "no_watch":
        ablation = None
    if ablation:  # benchmarks/bench_knowledge.py: what each part of the training data buys
        examples = _ablate(ablation, examples, report, request, pairs)
        on_message(f"Ablation {ablation!r}: training on {len(examples)} examples.")
    train, held_out = split_examples(training_examples(examples, built.facts, knowledge),
                                     eval_fraction=0.1, seed=request.seed)
    if len(held_out) > MAX_EVAL_EXAMPLES:
        # A held-out loss needs a few hundred examples, not thousands (a 20,000-file folder held out 5,700
        # and its evaluation alone took 15 minutes): the rest are trained on.
        train, held_out = train + held_out[MAX_EVAL_EXAMPLES:], held_out[:MAX_EVAL_EXAMPLES]
        on_message(f"Held-out loss on {MAX_EVAL_EXAMPLES} examples (a sample; the rest are trained on).")
    if not train or not held_out:

        raise DataError(f"Only {len(built.examples)} examples could be made from {request.data_path}: "
                        "add more text (a few pages at least) to train and evaluate.")
    return ExampleSplit(train, held_out, built, knowledge)


#: The most examples the held-out loss is computed on.
MAX_EVAL_EXAMPLES = 300

#: Ablations for the knowledge benchmark (request.extra["ablation"]).
ABLATIONS = ("topic_examples", "one_phrasing", "no_passages")


def _ablate(ablation: str, examples: list, report, request: TrainRequest, pairs: int) -> list:
    """The training examples without one part: 'topic_examples' (the earlier topic-level offline examples
    instead of fact-level ones), 'one_phrasing' (one question per fact), 'no_passages' (no plain text)."""

    if ablation == "topic_examples":
        return build_examples(report, qa="offline", pairs_per_chunk=pairs, with_facts=False).examples
    if ablation == "one_phrasing":
        seen: set[str] = set()
        kept = []
        for example in examples:
            if example.kind == "fact":
                if example.source in seen:
                    continue
                seen.add(example.source)
            kept.append(example)
        return kept
    if ablation == "no_passages":
        return [e for e in examples if e.kind != "passage"]
    raise ValueError(f"unknown ablation {ablation!r}; one of {', '.join(ABLATIONS)}")


def _training_arguments(config: dict[str, Any], run: RunDir, device: str):
    from transformers import TrainingArguments

    warmup = int(math.ceil(config["max_steps"] * float(config.get("warmup_ratio", 0.0))))
    precision = config.get("precision", "fp32")
    bf16 = device == "cuda" and precision in ("bf16", "4bit")
    if device == "cpu" and config.get("bf16_autocast"):

        # autocast on CPUs with native bf16 (avx512_bf16/AMX): ~1.5× faster. The plan's flag comes from the
        # CPU's flags; cpu_bf16_autocast_ok() also runs a quick forward/backward check once per process.
        bf16 = cpu_bf16_autocast_ok()
    return TrainingArguments(
        output_dir=str(run.checkpoints_dir),
        max_steps=int(config["max_steps"]),
        per_device_train_batch_size=int(config["per_device_train_batch_size"]),
        per_device_eval_batch_size=int(config.get("per_device_eval_batch_size")
                                       or config["per_device_train_batch_size"]),
        gradient_accumulation_steps=int(config["gradient_accumulation_steps"]),
        learning_rate=float(config["learning_rate"]),
        warmup_steps=warmup,
        lr_scheduler_type="cosine",
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must be seen (and stop the run), not averaged away
        eval_strategy="steps",
        eval_steps=int(config["eval_steps"]),
        save_strategy="steps",
        save_steps=int(config["save_steps"]),
        save_total_limit=None,  # pruned by RunTrainer, only after the newer checkpoint is complete
        seed=int(config["seed"]),
        data_seed=int(config["seed"]),
        bf16=bf16,
        fp16=device == "cuda" and precision == "fp16",
        optim=config.get("optim", "adamw_torch"),
        use_cpu=device == "cpu",
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        gradient_checkpointing=False,  # handled when the model is loaded
        # FSDP (--fsdp, with --num-processes) shards the frozen base across the processes, for models
        # that do not fit one card; DDP (the default) keeps a whole copy on each.
        fsdp="full_shard auto_wrap" if config.get("fsdp") else "",
        fsdp_config={"use_orig_params": True} if config.get("fsdp") else None,
        ddp_find_unused_parameters=False,
    )


def save_adapter(model, tokenizer, run: RunDir) -> str:
    """The adapter written to a temporary folder and renamed, so a kill never leaves half of one."""
    staging = run.path / f".adapter.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    _remove_stale_adapter_folders(run)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half written stays behind

        if is_disk_full(error, run.path):

            raise DiskSpaceError(f"The disk is full: the adapter could not be saved in {run.path}, so the "
                                 f"half-written one was removed; free some space, then `llmcustoms resume "
                                 f"{run.id}` saves it from the last checkpoint.") from error
        raise
    old = run.path / f".adapter.old-{os.getpid()}"
    if run.adapter_dir.exists():
        os.replace(run.adapter_dir, old)  # out of the way by a rename: never a moment with half an adapter
    os.replace(staging, run.adapter_dir)
    shutil.rmtree(old, ignore_errors=True)
    return str(run.adapter_dir)


def _remove_stale_adapter_folders(run: RunDir) -> None:
    """``.adapter.tmp-<pid>`` / ``.adapter.old-<pid>`` folders of processes that are gone (a kill during a save)."""

    remove_dead_process_folders(run.path, r"\.adapter\.(?:tmp|old)-(\d+)")


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


@dataclass
class RunChoices:
    """What a new run trains on and how: decided from the request, the settings and the hardware."""

    device: str
    model_name: str
    model_path: str
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def resolve_choices(request: TrainRequest, sink: EventSink) -> RunChoices:
    """Device, model (downloaded if need be) and settings for ``request``, as a new run chooses them.

    ``sink`` gets the warnings of a model fallback. Writes no run directory.
    """

    request.settings = as_settings(request.settings)
    device = choose_device(request.device, request.settings.force_cpu)
    model_name, model_path = resolve_model(request.model, device, sink, request.settings)
    # The planner knows registry names by name and any other model by its folder's config.json.
    config, notes = resolve_train_config(request, model_name if find_spec(model_name) else model_path, device)
    return RunChoices(device, model_name, model_path, config, notes)


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


def request_from_run(run: RunDir) -> TrainRequest:
    """The TrainRequest recorded in run.json (unknown keys from other versions are ignored)."""
    recorded = run.read().get("request") or {}
    known = {f.name for f in fields(TrainRequest)} - LOCAL_FIELDS
    return TrainRequest(**{k: v for k, v in recorded.items() if k in known})


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
    stop = stop if stop is not None else threading.Event()
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir to resume")
    if not resume:
        # A bad folder is a sentence now, before a model is downloaded or a run directory made.
        folder_report(request).raise_if_blocked()
    setup = None if resume else _fresh_setup(request, run_dir)
    run = run_dir if setup is None else setup.run

    from llmcustoms.training.ranks import is_secondary

    # From here on this process alone writes the run (in multi-process training: rank 0 alone).
    with nullcontext() if is_secondary() else RunLock(run):
        if setup is None:
            setup = _resume_setup(run)
        return _owned_run(request, setup, sink, stop, on_run)


def resume_training(run_ref: str | os.PathLike[str] | RunDir, sink: EventSink | None = None,
                    stop: threading.Event | None = None, callbacks: list[Any] | None = None) -> TrainResult:
    """Resume run ``run_ref`` in this process (``llmcustoms resume RUN``; detached: ``detach.resume_run``)."""
    run = run_ref if isinstance(run_ref, RunDir) else RunDir.open(run_ref)
    request = request_from_run(run)
    request.callbacks = list(callbacks or [])
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
    settings = request.settings = as_settings(request.settings)
    if device == "cuda" and settings.max_vram_gb:
        # MAX_VRAM_GB: behave like a smaller card, so the plan for that budget is what really runs.

        total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
        torch.cuda.set_per_process_memory_fraction(allocator_cap_fraction(settings.max_vram_gb, total_mb))

    # Threads and bf16 as they will really run on this CPU (the GPU's config passes through unchanged).
    model, tokenizer = load_for_training(setup.model_path, settle_cpu_training(config))
    data = prepare_data(request, tokenizer, int(config["max_seq_len"]), info,
                        warn=lambda message: emit(make_event("warning", message=message)))
    recorded = run.read()
    if setup.resume and recorded.get("train_rows") not in (None, len(data.train_rows)):
        emit(make_event("warning", health="data_changed", message=(
            f"The data folder changed since the run started ({recorded.get('train_rows')} → "
            f"{len(data.train_rows)} training rows): the resumed run continues on the new data.")))
    run.update(train_examples=data.train_examples, eval_examples=data.eval_examples, qa_mode=data.qa_mode,
               example_prompts=data.example_prompts, train_rows=len(data.train_rows))

    collator = PackedCollator(tokenizer.pad_token_id)
    collator.attach(model)
    callback = EventCallback(emit, collator, device, stop, monitor=monitor, pulse=pulse)
    initial_adapter = _adapter_snapshot(model)  # to start over cleanly after an OOM before any checkpoint

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

    trainer = _build_trainer(model, data, collator, callback, config, run, device, emit, request.callbacks)
    if not setup.resume and config.get("budget_by_data") and request.max_steps is None:
        _set_budget(trainer, data, config, run, emit)
        from llmcustoms.training.time_cap import TimeCap

        trainer.add_callback(TimeCap(float(config.get("budget_minutes") or 10.0),
                                     float(config["seconds_per_step_measured"]), emit))
    knowledge_before = _knowledge_before(model, tokenizer, data, run, setup, emit)
    watch = None
    if not setup.resume and knowledge_before is not None and data.knowledge.dev_probes \
            and config.get("knowledge_watch", True) and os.environ.get("LLMCUSTOMS_ABLATION") != "no_watch":
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
        _load_checkpoint_adapter(model, checkpoint)
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
    knowledge = _knowledge_after(trainer.model, tokenizer, data, None if stopped_before else knowledge_before, run,
                                 emit, steps)
    run.update(status=status, eval_loss_after=eval_after, adapter_path=adapter, steps=steps,
               finished_at=time.time())
    emit(make_event("done", step=steps, max_steps=config["max_steps"], status=status, eval_loss_before=eval_before,
                    eval_loss_after=eval_after, adapter_path=adapter,
                    knowledge=_knowledge_fields(knowledge),
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


def _knowledge_before(model, tokenizer, data: PreparedData, run: RunDir, setup: RunSetup, emit: EventSink):
    """The base model's answers to the held-out questions (closed and open book), asked once per run."""

    split = data.knowledge
    if split is None or not split.enough:
        return None
    stored = run.read().get("knowledge_before")
    if setup.resume and stored and stored.get("questions") == len(split.probes):
        return KnowledgeReport.from_dict(stored)
    emit(make_event("info", message=f"Asking the {len(split.probes)} held-out questions of the base model "
                                    "(closed book, then with the passage: open book)…"))
    report = score_knowledge(model, tokenizer, split.probes, conditions=("base", "open_book"))
    run.update(knowledge_before=report.to_dict(), knowledge_probes=[p.to_dict() for p in split.probes])
    return report


def _knowledge_after(model, tokenizer, data: PreparedData, before, run: RunDir, emit: EventSink, step: int):
    """The tuned model asked the same questions; the full report goes to run.json and a 'knowledge' event."""

    split = data.knowledge
    if split is None or before is None:
        message = split.summary() if split is not None else "No knowledge score."
        run.update(knowledge={"questions": len(split.probes) if split else 0, "base": None, "tuned": None,
                              "open_book": None, "message": message, "rows": []})
        return None
    known = {c: [row[c] for row in before.rows] for c in ("base", "open_book")}
    report = score_knowledge(model, tokenizer, split.probes, known=known)
    report.message = f"{report.headline()}. {split.summary()}"
    run.update(knowledge=report.to_dict())
    emit(make_event("knowledge", step=step, message=f"Knowledge: {report.headline()}.", **_knowledge_fields(report)))
    return report


def _knowledge_fields(report) -> dict[str, Any]:
    if report is None:
        return {}
    return {"questions": report.questions, "base": report.base, "tuned": report.tuned, "open_book": report.open_book}


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
    trainer = RunTrainer(model=model, args=_training_arguments(config, run, device), train_dataset=data.train_rows,
                         eval_dataset=data.eval_rows, data_collator=collator,
                         callbacks=[StepBoundary(), callback, *clock, *extra_callbacks, *together], emit=emit)
    trainer.remove_callback(PrinterCallback)  # our events replace its printed dicts
    return trainer


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
            data = prepare_data(request, tokenizer, int(config["max_seq_len"]), info)
        except DataError:  # the examples do not survive shorter sequences: nothing smaller is left
            config.update(backoff.before)
            raise OutOfMemoryError(give_up_message(config, setup.model_name)) from None
    checkpoint = checkpoints.latest_complete(run.checkpoints_dir)
    checkpoints.discard_incomplete(run.checkpoints_dir)
    if checkpoint is None:
        _restore_adapter(model, initial_adapter)  # no checkpoint yet: start over from the untrained adapter
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


def _adapter_snapshot(model) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(model).items()}


def _load_checkpoint_adapter(model, checkpoint: Path) -> None:
    """The LoRA weights a Trainer checkpoint holds, put into ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "adapter_model.safetensors"
    if not weights.is_file():
        raise TrainingError(f"The checkpoint {checkpoint} holds no adapter weights; start a new run.")
    set_peft_model_state_dict(model, load_file(str(weights)))


def _restore_adapter(model, snapshot: dict[str, Any]) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(model, snapshot)


def _friendly_error(error: Exception) -> Exception:
    if isinstance(error, LLMCustomsError):
        return error
    if is_oom(error):
        return OutOfMemoryError("The GPU ran out of memory: choose the highspeed preset, a smaller model, "
                                "or 4-bit training.")
    return error
