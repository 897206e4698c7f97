"""What a new run trains on and how: the device, the model (with the embedded fallback) and the settings.

The preset, the hardware plan and the request's overrides merge into one config (``resolve_train_config``);
``resolve_choices`` makes all three choices for a request and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.hardware.detector import HardwareDetector
from llmcustoms.models.availability import model_availability
from llmcustoms.models.manager import ModelManager
from llmcustoms.models.registry import EMBEDDED_MODEL, find_spec
from llmcustoms.planning.presets import adapt_for_cpu, get_preset
from llmcustoms.runs.events import EventSink, make_event
from llmcustoms.training.request import TrainRequest

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings


def choose_device(request_device: str | None, force_cpu: bool) -> str:
    """'cuda' when a GPU is usable and not refused, else 'cpu'."""
    if request_device:
        return request_device
    if force_cpu:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def request_settings(request: TrainRequest) -> Settings:
    """The settings the entry point read and put on ``request`` (``run_training`` or ``FineTuner`` does);
    never read again below them."""
    if request.settings is None:
        raise ValueError("the request carries no settings: run_training or FineTuner puts the entry's on it")
    return request.settings


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

    ``sink`` gets the warnings of a model fallback. Writes no run directory. ``request.settings`` must be set
    (the entry point's).
    """

    settings = request_settings(request)
    device = choose_device(request.device, settings.force_cpu)
    model_name, model_path = resolve_model(request.model, device, sink, settings)
    # The planner knows registry names by name and any other model by its folder's config.json.
    config, notes = resolve_train_config(request, model_name if find_spec(model_name) else model_path, device)
    return RunChoices(device, model_name, model_path, config, notes)
