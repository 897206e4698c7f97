"""The one place the TUI calls the headless core (``docs/CONTRACTS.md``).

Every import of ``llmcustoms`` happens inside a function so that importing the app stays light:
torch, transformers, peft and datasets are loaded by the worker that first needs them, never at
start. These functions block; screens call them from thread workers only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from llmcustoms_tui.messages import PreviewSample

if TYPE_CHECKING:  # the core is imported inside functions: the TUI starts without it
    from llmcustoms.chat.session import ChatSession
    from llmcustoms.core.planner import Plan
    from llmcustoms.data.examples import QAMode
    from llmcustoms.data.file_text import FileText
    from llmcustoms.data.report import DataReport
    from llmcustoms.qa.cost import GenerationPlan
    from llmcustoms.runs.follow import RunFollower
    from llmcustoms.support.verdict import Support
    from llmcustoms.text.types import Example
    from llmcustoms.training.dataset_check import DatasetReport
    from llmcustoms.utils.config import Settings

#: How many examples the data screen previews.
PREVIEW_EXAMPLES = 3
#: How much source text is shown next to each previewed pair.
SOURCE_EXCERPT_CHARS = 360


class ServerPlan(Protocol):
    """What a Q&A server would be sent (the core's ``GenerationPlan``): the screens show its ``describe()``."""

    def describe(self) -> str:
        """One paragraph: chunks, tokens, the server."""
        ...


class ChatSessionLike(Protocol):
    """What the chat screen uses of a loaded chat session: the core's ``ChatSession``, or the tests' scripted one
    (``App(chat_factory=...)``); mypy checks both against it."""

    example_prompts: list[str]

    @property
    def has_adapter(self) -> bool:
        """Whether the run's adapter is loaded (without it there is no base model to compare with)."""
        ...

    def stream(self, prompt: str, tuned: bool = True, max_new_tokens: int = 200) -> Iterator[str]:
        """The answer to ``prompt`` piece by piece, by the tuned model or (``tuned=False``) the base one."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


@runtime_checkable
class DescribedSession(Protocol):
    """A chat session that says itself what it runs (the tests' scripted one); the core's is described by
    ``describe_run`` from its run folder."""

    description: str


# -- hardware -------------------------------------------------------------------------------------
def detect_hardware() -> dict[str, Any]:
    """The core's hardware report, probed by a child process (blocking: call from a worker).

    A child, not this process: importing torch in a worker thread would hold the GIL for seconds
    and freeze the first screen while it is drawn.
    """
    from llmcustoms.hardware.probe import detect_in_subprocess

    return detect_in_subprocess()


# -- data -----------------------------------------------------------------------------------------
def validate_folder(path: str, settings: Settings | None = None) -> DataReport:
    """The core's DataReport for ``path`` (never raises for content problems)."""
    from llmcustoms.data.reader import validate_folder as _validate

    report = _validate(Path(path).expanduser(), settings=settings)
    _ = report.example_count  # counted here, in the worker: it builds the examples once (data/count.py)
    return report


def dataset_report(report: DataReport, settings: Settings | None = None,
                   preset: str | None = None) -> DatasetReport | None:
    """The dataset report of a checked folder (token lengths estimated, duplicates, leakage), or None when
    the folder is blocked; built offline, nothing sent (issue 23)."""
    from llmcustoms.training.dataset_check import folder_dataset_report

    return folder_dataset_report(report, settings=settings, preset=preset)


def file_text(report: DataReport, relpath: str) -> FileText:
    """The text the model will learn from one file of the checked folder (a ``FileText``; may read it again)."""
    from llmcustoms.data.file_text import file_text as _file_text

    return _file_text(report, relpath)


def _source_excerpt(report: DataReport, example: Example) -> str:
    """The text an example came from: the file (``source`` is ``file:chunk``) around the answer."""
    relpath = example.source.rsplit(":", 1)[0]
    if not relpath:
        return ""
    try:
        text = (Path(report.root) / relpath).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    probe = example.answer[:40].strip()
    at = text.find(probe) if probe else -1
    start = max(0, at - SOURCE_EXCERPT_CHARS // 3) if at >= 0 else 0
    return _clip(text[start:])


def _clip(text: str, limit: int = SOURCE_EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def load_preview_tokenizer(model: str) -> tuple[Any, str]:
    """The chosen model's tokenizer when the model is already on disk, and a note saying which.

    Returns ``(None, note)`` when the model would have to be downloaded or converted first: the
    preview is not worth gigabytes; training fetches the model anyway.
    """
    from llmcustoms.models.manager import ModelManager, is_model_folder
    from llmcustoms.models.registry import EMBEDDED_MODEL

    name = EMBEDDED_MODEL if model in ("", "auto", None) else model
    manager = ModelManager()
    folder: str | None = None
    candidate = Path(name).expanduser()
    if candidate.is_dir() and is_model_folder(candidate):
        folder = str(candidate)
    elif manager.check_local_model(name):
        folder = str(manager.cache_path(name))
    if folder is None:
        return None, f"{name} is not downloaded yet: showing the plain messages; training applies its chat template."
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    label = candidate.name if candidate.is_dir() else name
    return tokenizer, f"As {label} sees it (its chat template):"


def build_preview(
    report: DataReport,
    qa: str,
    model: str,
    confirm: Callable[[ServerPlan], bool] | None = None,
    on_message: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int = PREVIEW_EXAMPLES,
    preset: str | None = None,
) -> dict[str, Any]:
    """Build the examples the run would train on and render a few of them for the data screen.

    ``confirm(plan)`` is asked before any text is sent to a server (the core calls it);
    ``progress(done, total)`` follows the generation chunk by chunk. ``preset`` gives the pairs per chunk,
    as training uses them, so the preview's count is the run's.
    """
    from llmcustoms.data.count import default_pairs_per_chunk
    from llmcustoms.data.examples import build_examples

    settings = report.settings  # the app's, handed to validate_folder
    example_set = build_examples(report, qa=cast("QAMode", qa), confirm=confirm, on_message=on_message, progress=progress,
                                 pairs_per_chunk=default_pairs_per_chunk(preset, settings), settings=settings)
    examples = list(example_set.examples)
    picked = _spread(examples, limit)
    tokenizer, note = (None, "")
    if picked:
        try:
            tokenizer, note = load_preview_tokenizer(model)
        except Exception as error:  # noqa: BLE001 - the preview must not fail on a tokenizer problem
            from llmcustoms_tui.format import describe_error

            tokenizer, note = None, f"Could not load the tokenizer for the preview ({describe_error(error)})."
    samples = []
    for example in picked:
        rendered = None
        if tokenizer is not None:
            from llmcustoms.data.tokenize import render_example

            rendered = render_example(example, tokenizer)
        samples.append(PreviewSample(
            source=example.source,
            source_text=_source_excerpt(report, example),
            question=example.prompt,
            answer=example.answer,
            kind=example.kind,
            rendered=rendered,
        ))
    return {
        "qa_mode": example_set.qa_mode,
        "message": example_set.message or "",
        "total": len(examples),
        "samples": samples,
        "template_note": note,
    }


#: The preview shows one example of each kind first, in this order, so the user sees every way examples
#: are made (a question generated by the server is what the confirmation was about).
PREVIEW_KINDS = ("generated", "fact", "explicit", "passage", "offline")


def _spread(items: list[Example], limit: int) -> list[Example]:
    """Up to ``limit`` items: one of each kind first, then spread over the list (first, middle, last…)."""
    if len(items) <= limit:
        return list(items)
    picked: list[Example] = []
    for kind in PREVIEW_KINDS:
        first = next((item for item in items if item.kind == kind), None)
        if first is not None and len(picked) < limit:
            picked.append(first)
    step = (len(items) - 1) / max(1, limit - 1)
    for i in range(limit):
        if len(picked) >= limit:
            break
        candidate = items[round(i * step)]
        if all(candidate is not p for p in picked):
            picked.append(candidate)
    order = {id(item): n for n, item in enumerate(items)}
    return sorted(picked, key=lambda item: order[id(item)])


def load_settings() -> Settings | None:
    """The core's ``Settings``, read once when the app starts; None when a .env file is bad (the core then
    reports it where it matters, reading them itself)."""
    try:
        from llmcustoms.utils.config import Settings

        return Settings.load()
    except Exception:  # noqa: BLE001 - a bad .env is reported by the core where it matters
        return None


def default_model_and_preset(settings: Settings | None = None) -> tuple[str, str]:
    """DEFAULT_MODEL and DEFAULT_PRESET of ``settings`` (the app's; else 'auto', 'quality')."""
    if settings is None:
        return "auto", "quality"
    return str(settings.default_model or "auto"), str(settings.default_preset or "quality")


def groq_key_present(settings: Settings | None = None) -> bool:
    """Whether the resolved configuration has a Groq key (the value itself is never returned)."""
    if settings is None:
        return bool(os.environ.get("GROQ_API_KEY"))
    return bool(settings.groq_api_key)


# -- plan -----------------------------------------------------------------------------------------
def make_plan(model: str, preset: str, report: DataReport | None, hardware: dict[str, Any] | None,
              settings: Settings | None = None) -> Plan:
    """The core's Plan (model, preset, config, reason, estimate_mb, free_mb, fits, estimated_minutes)."""
    from llmcustoms.core.planner import make_plan as _make_plan

    return _make_plan(model, preset, data_report=report, hardware=hardware, env_config=settings)


def generation_plan(data_path: str, qa: str, preset: str, settings: Settings | None = None) -> GenerationPlan | None:
    """What training would send to the Q&A server (the core's plan, with ``describe()``), or None.

    Sends nothing; reads the folder (blocking: call from a worker).
    """
    from llmcustoms.training.prepare import generation_plan as _generation_plan
    from llmcustoms.training.request import TrainRequest

    return _generation_plan(TrainRequest(data_path=str(Path(data_path).expanduser()), qa=cast("QAMode", qa), preset=preset,
                                         settings=settings))


def model_choices(extra: str | None = None) -> list[tuple[str, str]]:
    """(label, value) for the model selector: auto, every registry model, and a user's own path or id."""
    from llmcustoms.models.registry import MODELS

    choices = [("auto — recommended for this machine", "auto")]
    for spec in MODELS.values():
        size = f"{spec.params_m / 1000:.1f}B" if spec.params_m >= 1000 else f"{spec.params_m:.0f}M"
        tags = [size]
        if spec.embedded:
            tags.append("embedded, offline")
        if spec.gated:
            tags.append("gated")
        choices.append((f"{spec.name} ({', '.join(tags)})", spec.name))
    if extra and extra != "auto" and extra not in MODELS:
        label = Path(extra).name if Path(extra).expanduser().exists() else extra
        choices.append((f"{label} (yours)", extra))
    return choices


def preset_choices() -> list[tuple[str, str]]:
    """(name, what it means) for the three presets, in speed order."""
    from llmcustoms.planning.presets import PRESET_DESCRIPTIONS, PRESETS

    return [(name, PRESET_DESCRIPTIONS.get(name, "")) for name in PRESETS]


def check_preset(name: str) -> str:
    """The preset's canonical name, or the core's ConfigError with a sentence."""
    from llmcustoms.planning.presets import check_preset as _check

    return _check(name)


# -- runs -----------------------------------------------------------------------------------------
def run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The core's view of a run: status as it really is ('interrupted' for a dead worker), live, error."""
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.runs.status import run_state

    return run_state(RunDir(run_dir))


def run_is_live(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a process trains the run now (the core's lock / pid check)."""
    try:
        return bool(run_info(run_dir)["live"])
    except Exception:  # noqa: BLE001 - an unreadable run is not a live one
        return False


def find_live_runs() -> list[str]:
    """Run directories of runs trained by another process right now, newest first.

    A run trained by a thread of this very process is the app's own (it already has a handle).
    """
    from llmcustoms.runs.rundir import list_runs

    found = []
    for run in reversed(list_runs()):
        try:
            info = run_info(run.path)
        except Exception:  # noqa: BLE001
            continue
        if info.get("live") and info.get("pid") != os.getpid():
            found.append(str(run.path))
    return found


def run_status(run_dir: str | os.PathLike[str]) -> str:
    """The run's status (``unknown`` when unreadable)."""
    try:
        return str(run_info(run_dir)["status"])
    except Exception:  # noqa: BLE001
        return "unknown"


def latest_finished_run() -> str | None:
    """The newest run with an adapter (what the chat screen opens by default)."""
    from llmcustoms.runs.rundir import list_runs

    for run in reversed(list_runs()):
        if run.adapter_dir.is_dir():
            return str(run.path)
    return None


def events_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where the run writes its events (the core's ``RunDir.events_path``)."""
    from llmcustoms.runs.rundir import RunDir

    return RunDir(run_dir).events_path


def adapter_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Where the run saves its adapter (the core's ``RunDir.adapter_dir``)."""
    from llmcustoms.runs.rundir import RunDir

    return RunDir(run_dir).adapter_dir


def has_adapter(run_dir: str | os.PathLike[str] | None) -> bool:
    """Whether the run has saved its adapter."""
    return run_dir is not None and adapter_dir(run_dir).is_dir()


def read_new_events(path: str | os.PathLike[str], offset: int) -> tuple[list[dict[str, Any]], int]:
    """The core's incremental reader of events.jsonl."""
    from llmcustoms.runs.events import read_new_events as _read

    return _read(path, offset)


def run_follower(run_dir: str | os.PathLike[str], *, watch_process: bool = True,
                 liveness_every_s: float = 1.0) -> RunFollower:
    """The core's ``RunFollower`` on ``run_dir``: call its ``poll()`` for the events written since the last one.

    ``watch_process=False`` for a run in this process: the caller knows when its thread ends.
    """
    from llmcustoms.runs.follow import RunFollower
    from llmcustoms.runs.rundir import RunDir

    return RunFollower(RunDir(run_dir), liveness_every_s=liveness_every_s if watch_process else None)


def request_detached_stop(run_dir: str | os.PathLike[str]) -> bool:
    """Ask a run in another process to stop gracefully (the core's ``stop_run``: returns at once)."""
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.detach import stop_run

    stop_run(RunDir(run_dir))
    return True


def describe_run(run_dir: str | os.PathLike[str]) -> str:
    """``<id> · <model> · <preset>`` for a status line."""
    from llmcustoms.runs.rundir import RunDir

    run = RunDir(run_dir)
    try:
        data = run.read()
    except Exception:  # noqa: BLE001
        return run.id
    parts = [run.id, data.get("model"), data.get("preset")]
    events, _ = read_new_events(run.events_path, 0)
    steps = [e for e in events if e.get("kind") == "step"]
    if steps:
        parts.append(f"step {steps[-1].get('step', '?')} / {steps[-1].get('max_steps', '?')}")
    return " · ".join(str(part) for part in parts if part)


# -- chat -----------------------------------------------------------------------------------------
def open_chat_session(run_dir: str) -> ChatSession:  # a ChatSessionLike
    """A loaded ChatSession on ``run_dir`` (loads the base model and the adapter: seconds)."""
    from llmcustoms.chat.session import ChatSession

    session = ChatSession(run_dir)
    session.load()
    return session


# -- the passage behind an answer (issue 24) ------------------------------------------------------
def support_note(run_dir: str | os.PathLike[str]) -> str | None:
    """Build (or load) the support index of ``run_dir``'s documents; its note: why there are no passages,
    or that the documents moved or changed since the run trained (None when all is as it was)."""
    from llmcustoms.support.index import SupportIndex

    try:
        return SupportIndex.for_run(run_dir).note
    except Exception as error:  # noqa: BLE001 - the support line is a help beside the chat, never its end
        return f"The passages of your documents could not be searched ({error})."


def answer_support(run_dir: str | os.PathLike[str], question: str, answer: str) -> Support | None:
    """The ``Support`` (llmcustoms.support.verdict) of ``answer`` to ``question`` over the run's documents,
    or None when it could not be decided."""
    from llmcustoms.support.verdict import support_for_run

    try:
        return support_for_run(os.fspath(run_dir), question, answer)
    except Exception:  # noqa: BLE001
        return None


def support_context(run_dir: str | os.PathLike[str], support: Support, around: int = 3) -> list[tuple[str, bool]]:
    """The file's text around ``support``'s passage: ``(passage text, is it the one)`` in file order."""
    from llmcustoms.support.index import SupportIndex
    from llmcustoms.support.passages import Passage

    index = SupportIndex.for_run(run_dir)
    if support.file is None or support.start is None or support.line is None or support.paragraph is None:
        return [(support.passage, True)]  # no place in a file: the passage alone (what the index would give)
    passage = Passage(support.file, support.start, support.line, support.paragraph, support.passage)
    return [(p.text, p == passage) for p in index.context(passage, around=around)]


# -- the knowledge score ------------------------------------------------------------------------
def run_knowledge(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the run's knowledge score without its rows, the held-out questions) from run.json.

    The score is ``format.knowledge_summary`` of run.json's ``knowledge`` (None for a run from before the
    score, or one still training). The questions come from ``knowledge_probes`` (written before training
    starts), else from the score's rows; each has ``question``, ``reference``, ``span`` and
    ``trained_phrasings``. Never raises: an unreadable run has neither.
    """
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms_tui.format import knowledge_summary

    try:
        data = RunDir(run_dir).read()
    except Exception:  # noqa: BLE001 - no run.json (yet), or half-written by an old core
        return None, []
    stored = data.get("knowledge")
    knowledge: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    general, person = data.get("general"), data.get("person_questions")
    if knowledge and isinstance(general, dict):  # what the tuned model kept (issue 22), stored beside the score
        knowledge.update(general_kept=general.get("general_kept"),
                         general_perplexity_change=general.get("general_perplexity_change"))
    if knowledge and isinstance(person, dict):  # the user's own questions (eval --questions)
        knowledge.update(person_questions=person.get("questions"), person_tuned=person.get("tuned"))
    source = data.get("knowledge_probes") or knowledge.get("rows") or []
    probes, seen = [], set()
    for item in source if isinstance(source, list) else []:
        if not isinstance(item, dict) or not str(item.get("question") or "").strip():
            continue
        question = " ".join(str(item["question"]).split())
        if question in seen:
            continue
        seen.add(question)
        probes.append({"question": question, "reference": str(item.get("reference") or ""),
                       "span": str(item.get("span") or ""), "trained_phrasings": item.get("trained_phrasings")})
    return knowledge_summary(knowledge), probes


def answer_is_correct(answer: str, span: str) -> bool | None:
    """Whether ``answer`` holds the reference's key span, scored as the knowledge score does (None: can't say)."""
    if not span.strip() or not answer.strip():
        return None
    try:
        from llmcustoms.evaluation.scoring import is_correct
    except ImportError:  # pragma: no cover - a core without the knowledge score
        return None
    return bool(is_correct(answer, span))
