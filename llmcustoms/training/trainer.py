"""The training run, top to bottom: data → model → LoRA → evaluate → train → evaluate → save.

``run_training(TrainRequest(...))`` is the one entry point used by the CLI, ``FineTuner`` and the
TUI. Everything it does is reported as events (``events.py``) to ``runs/<id>/events.jsonl`` and to an
optional extra sink; ``run.json`` holds the run's status and results.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from llmcustoms.errors import LLMCustomsError, OutOfMemoryError, TrainingError
from llmcustoms.training.events import EventSink, FanoutSink, JsonlEventSink, make_event
from llmcustoms.training.runs import RunDir
from llmcustoms.utils.logger import get_logger

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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


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
    from llmcustoms.training.presets import adapt_for_cpu, get_preset

    notes: list[str] = []
    config = get_preset(request.preset)
    plan: dict[str, Any] = {}
    try:
        from llmcustoms.core.hardware_detector import HardwareDetector

        detector = HardwareDetector()
        vram = detector.detect_gpu_memory() if device == "cuda" else 0
        plan = detector.get_training_config(model_name, vram) or {}
    except (ImportError, AttributeError, NotImplementedError):
        plan = {}
    if device == "cpu":
        config, note = adapt_for_cpu(config)
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


def resolve_model(request_model: str, device: str, sink: EventSink) -> tuple[str, str]:
    """(name, local folder) for the requested model; 'auto' falls back to the embedded model."""
    from llmcustoms.core.model_manager import ModelManager
    from llmcustoms.core.registry import EMBEDDED_MODEL

    manager = ModelManager()
    if request_model != "auto":
        return manager.resolve(request_model)
    choice = EMBEDDED_MODEL
    if device == "cuda":
        try:
            from llmcustoms.core.hardware_detector import HardwareDetector

            detector = HardwareDetector()
            choice = detector.suggest_model(detector.detect_gpu_memory())
        except (ImportError, AttributeError):
            choice = EMBEDDED_MODEL
    if choice == EMBEDDED_MODEL:
        return manager.resolve(EMBEDDED_MODEL)
    try:
        return manager.resolve(choice)
    except LLMCustomsError as error:
        sink(make_event("warning", message=f"{choice} could not be had ({error}); using the embedded "
                                           f"{EMBEDDED_MODEL} instead."))
        return manager.resolve(EMBEDDED_MODEL)


def prepare_data(request: TrainRequest, tokenizer, max_seq_len: int, on_message: Callable[[str], None]
                 ) -> PreparedData:
    """Validate the folder, build examples, split, tokenize and pack."""
    from llmcustoms.data.examples import build_examples
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.data.split import split_examples
    from llmcustoms.data.tokenize import tokenize_examples
    from llmcustoms.training.packing import pack_examples
    from llmcustoms.training.presets import get_preset

    report = validate_folder(request.data_path)
    report.raise_if_blocked()
    for warning in report.warnings:
        on_message(warning)
    pairs = int(get_preset(request.preset).get("qa_pairs_per_chunk", 3))
    built = build_examples(report, qa=request.qa, pairs_per_chunk=pairs, on_message=on_message)
    train, held_out = split_examples(built.examples, eval_fraction=0.1, seed=request.seed)
    if not train or not held_out:
        from llmcustoms.errors import DataError

        raise DataError(f"Only {len(built.examples)} examples could be made from {request.data_path}: "
                        "add more text (a few pages at least) to train and evaluate.")
    train_ds = tokenize_examples(train, tokenizer, max_seq_len)
    eval_ds = tokenize_examples(held_out, tokenizer, max_seq_len)
    return PreparedData(
        train_rows=pack_examples(train_ds, max_seq_len), eval_rows=pack_examples(eval_ds, max_seq_len),
        train_examples=len(train), eval_examples=len(held_out), qa_mode=built.qa_mode,
        example_prompts=[e.prompt for e in held_out[:5]], notes=[built.message] if built.message else [],
    )


def _training_arguments(config: dict[str, Any], run: RunDir, device: str):
    from transformers import TrainingArguments

    warmup = int(math.ceil(config["max_steps"] * float(config.get("warmup_ratio", 0.0))))
    precision = config.get("precision", "fp32")
    bf16 = device == "cuda" and precision in ("bf16", "4bit")
    if device == "cpu" and config.get("bf16_autocast"):
        bf16 = True  # autocast on CPUs with native bf16 (avx512_bf16/AMX): ~1.5× faster
    return TrainingArguments(
        output_dir=str(run.checkpoints_dir),
        max_steps=int(config["max_steps"]),
        per_device_train_batch_size=int(config["per_device_train_batch_size"]),
        per_device_eval_batch_size=int(config["per_device_train_batch_size"]),
        gradient_accumulation_steps=int(config["gradient_accumulation_steps"]),
        learning_rate=float(config["learning_rate"]),
        warmup_steps=warmup,
        lr_scheduler_type="cosine",
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=int(config["eval_steps"]),
        save_strategy="steps",
        save_steps=int(config["save_steps"]),
        save_total_limit=2,
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
    )


def save_adapter(model, tokenizer, run: RunDir) -> str:
    """The adapter written to a temporary folder and renamed, so a kill never leaves half of one."""
    staging = run.path / f".adapter.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if run.adapter_dir.exists():
        shutil.rmtree(run.adapter_dir)
    os.replace(staging, run.adapter_dir)
    return str(run.adapter_dir)


def run_training(request: TrainRequest, sink: EventSink | None = None, stop: threading.Event | None = None,
                 on_run: Callable[[RunDir], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on ``request.data_path``; returns when the run is done, stopped or failed."""
    from llmcustoms.utils.config import Config
    from llmcustoms.utils.validators import check_preset

    started = time.time()
    settings = Config().load_env_config()
    request.preset = check_preset(request.preset)
    device = choose_device(request.device, settings["FORCE_CPU"])
    early: list[dict[str, Any]] = []  # events from before the run directory exists
    model_name, model_path = resolve_model(request.model, device, early.append)
    config, notes = resolve_train_config(request, model_name, device)

    run = RunDir.create(model_name, root=request.output_dir, status="running", model_path=model_path,
                        preset=request.preset, data_path=os.path.abspath(request.data_path), config=config,
                        request=request.to_dict(), device=device)
    file_sink = JsonlEventSink(run.events_path)
    emit = FanoutSink(file_sink, sink)
    if on_run is not None:
        on_run(run)
    for event in early:
        emit(event)
    for note in notes:
        emit(make_event("info", message=note))
    emit(make_event("start", step=0, max_steps=config["max_steps"], model=model_name, preset=request.preset,
                    device=device, precision=config.get("precision"), run_dir=str(run.path),
                    message=f"Training {model_name} with the {request.preset} preset on {device}."))

    model = trainer = None
    try:
        import torch

        torch.manual_seed(request.seed)
        from llmcustoms.training.model_loading import load_for_training

        model, tokenizer = load_for_training(model_path, config)
        data = prepare_data(request, tokenizer, int(config["max_seq_len"]),
                            lambda message: emit(make_event("info", message=message)))
        run.update(train_examples=data.train_examples, eval_examples=data.eval_examples, qa_mode=data.qa_mode,
                   example_prompts=data.example_prompts, train_rows=len(data.train_rows))

        from transformers import PrinterCallback, Trainer

        from llmcustoms.training.callbacks import EventCallback
        from llmcustoms.training.packing import PackedCollator

        collator = PackedCollator(tokenizer.pad_token_id)
        callback = EventCallback(emit, collator, device, stop)
        trainer = Trainer(model=model, args=_training_arguments(config, run, device),
                          train_dataset=data.train_rows, eval_dataset=data.eval_rows, data_collator=collator,
                          callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # our events replace its printed dicts
        eval_before = float(trainer.evaluate()["eval_loss"])
        run.update(eval_loss_before=eval_before)
        trainer.train()
        steps = trainer.state.global_step
        if callback.last_loss is not None and not math.isfinite(callback.last_loss):
            raise TrainingError("The loss became NaN or infinite: try a lower learning rate or the "
                                "bestaccuracy preset.")
        if callback.last_eval_step == steps and callback.last_eval_loss is not None:
            eval_after = callback.last_eval_loss  # the scheduled evaluation already ran at the last step
        else:
            eval_after = float(trainer.evaluate()["eval_loss"])
        adapter = save_adapter(trainer.model, tokenizer, run)
        status = "stopped" if callback.stopped_by_user else "done"
        run.update(status=status, eval_loss_after=eval_after, adapter_path=adapter, steps=steps,
                   finished_at=time.time(), timings={"total_s": round(time.time() - started, 2)})
        emit(make_event("done", step=steps, max_steps=config["max_steps"], eval_loss_before=eval_before,
                        eval_loss_after=eval_after, adapter_path=adapter,
                        message=f"{'Stopped' if status == 'stopped' else 'Done'}: held-out loss "
                                f"{eval_before:.3f} → {eval_after:.3f}; adapter in {adapter}"))
        return TrainResult(run, adapter, eval_before, eval_after, steps, status, notes)
    except Exception as error:
        friendly = _friendly_error(error)
        run.update(status="failed", error=str(friendly), finished_at=time.time())
        emit(make_event("error", message=str(friendly)))
        if friendly is error:
            raise
        raise friendly from error
    finally:
        file_sink.close()
        del trainer, model
        _free_memory(device)


def _friendly_error(error: Exception) -> Exception:
    if isinstance(error, LLMCustomsError):
        return error
    try:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError):
            return OutOfMemoryError("The GPU ran out of memory: choose the highspeed preset, a smaller model, "
                                    "or 4-bit training.")
    except ImportError:  # pragma: no cover
        pass
    return error


def _free_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
