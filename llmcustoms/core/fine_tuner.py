"""FineTuner: the library's facade — data → model → train → test in four calls.

    tuner = FineTuner("./my_text_files/", model="auto", preset="quality")
    adapter_path = tuner.train()
    tuner.test_model(["What is …?"])
    tuner.knowledge_score()  # how many held-out facts of the text it knows, beside the base model

``FineTuner.from_run(run_id)`` attaches to a run trained earlier (by the CLI, the wizard or a script).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, cast

from llmcustoms.chat.session import ChatSession
from llmcustoms.data.examples import QAMode
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.tokenize import tokenize_examples
from llmcustoms.errors import InputError
from llmcustoms.evaluation import run_eval
from llmcustoms.evaluation.knowledge import KnowledgeReport
from llmcustoms.evaluation.scoring import is_correct
from llmcustoms.hardware.cpu import settle_cpu_training
from llmcustoms.models.loading import load_for_training, load_tokenizer
from llmcustoms.planning.presets import check_preset
from llmcustoms.runs.events import EventSink, FanoutSink, ListSink
from llmcustoms.runs.progress import ProgressPrinter
from llmcustoms.runs.rundir import RunDir
from llmcustoms.support.show import support_lines
from llmcustoms.training.choices import RunChoices, choose_device, resolve_choices, resolve_model
from llmcustoms.training.prepare import split_training_examples
from llmcustoms.training.request import TrainRequest, TrainResult
from llmcustoms.training.trainer import run_training
from llmcustoms.utils.config import Settings

#: How many held-out questions ``test_model`` asks when given no prompts.
DEFAULT_TEST_QUESTIONS = 3


class ModelAnswers(list):
    """What ``test_model`` returns: a list of ``{"prompt", "answer", …}`` dicts, plus the run's knowledge
    score as ``.knowledge`` (run.json's dict, or None) and its one-line ``.headline``."""

    def __init__(self, answers: list[dict[str, Any]] | None = None, knowledge: dict[str, Any] | None = None,
                 headline: str = "") -> None:
        super().__init__(answers or [])
        self.knowledge = knowledge
        self.headline = headline


def _add_support(entry: dict[str, Any], key: str, chat: ChatSession, prompt: str, answer: str) -> None:
    """Print the passage of the run's documents that supports ``answer`` (or that none does) and keep it
    in ``entry[key]`` (``Support.to_dict()``; absent when chatting with a plain model)."""
    support = chat.support(prompt, answer)
    if support is not None:
        entry[key] = support.to_dict()
        print("\n".join(support_lines(support)))


class FineTuner:
    """Fine-tune a small chat model on a folder of .txt files."""

    def __init__(self, data_path: str, model: str | None = None, preset: str | None = None, *,
                 max_steps: int | None = None, output_dir: str | None = None, qa: str = "auto",
                 sink: EventSink | None = None, progress: bool = True, allow_send: bool = False) -> None:
        """``allow_send=True`` lets the folder's text go to the Q&A server when GROQ_API_KEY is set (``qa``
        'auto' or 'groq'); without it nothing is sent and offline examples are built instead.
        ``model`` and ``preset`` left None come from DEFAULT_MODEL / DEFAULT_PRESET (environment or .env),
        else 'auto' and 'quality', as for the CLI."""

        # Read once, here; every step of this tuner uses these.
        self.settings = Settings.load()
        model = model or self.settings.default_model or "auto"
        preset = preset or self.settings.default_preset or "quality"
        self.data_path = str(data_path)
        self.model_name = model
        self.preset = check_preset(preset)
        self.max_steps = max_steps
        self.output_dir = output_dir
        self.qa = qa
        self.allow_send = allow_send
        self.events = ListSink()
        self.sink = sink
        self.progress = progress
        self.result: TrainResult | None = None
        self.stop_event = threading.Event()
        self._model_path: str | None = None
        self._chat: ChatSession | None = None
        self._run: RunDir | None = None  # attached by from_run (train() sets self.result instead)

    @classmethod
    def from_run(cls, run_ref: str, output_dir: str | None = None, **options: Any) -> FineTuner:
        """A tuner on a run trained earlier: ``run_ref`` is its folder, id or unique id prefix (in
        ``output_dir`` or the usual runs folder). ``test_model`` and ``knowledge_score`` then use that run."""

        run = RunDir.open(run_ref, root=output_dir)
        data = run.read()
        options.setdefault("progress", False)
        tuner = cls(str(data.get("data_path") or "."), model=str(data.get("model") or "auto"),
                    preset=str(data.get("preset") or "quality"), output_dir=output_dir, **options)
        tuner._run = run
        tuner._model_path = data.get("model_path")
        return tuner

    @property
    def run(self):
        """The run this tuner trained (or was attached to with ``from_run``): a ``RunDir``, or None."""
        return self.result.run_dir if self.result is not None else self._run

    def _request(self) -> TrainRequest:
        max_steps = self.max_steps or self.settings.max_steps
        return TrainRequest(data_path=self.data_path, model=self.model_name, preset=self.preset,
                            max_steps=max_steps, output_dir=self.output_dir, qa=cast(QAMode, self.qa),  # checked when examples are built
                            send_consent=self.allow_send, settings=self.settings)

    def _resolved_model(self) -> tuple[str, str]:
        device = choose_device(None, self.settings.force_cpu)
        name, path = resolve_model(self.model_name, device, self.events, self.settings)
        self._model_path = path
        return name, path

    def prepare_data(self):
        """The tokenized training examples (a ``datasets.Dataset``): the very examples ``train()`` would
        train on (the same folder reading, held-out split and sequence length), before packing."""

        request = self._request()
        report = validate_folder(request.data_path, settings=self.settings)
        report.raise_if_blocked()  # as train(): before a model is fetched
        choices = self._choices(request)
        split = split_training_examples(request, lambda message: print(message, file=sys.stderr), report=report)
        return tokenize_examples(split.train, load_tokenizer(choices.model_path), int(choices.config["max_seq_len"]))

    def setup_model(self) -> tuple[Any, Any]:
        """(model with a fresh LoRA adapter, tokenizer), configured as training would use them."""

        choices = self._choices(self._request())
        return load_for_training(choices.model_path, settle_cpu_training(choices.config))

    def _choices(self, request: TrainRequest) -> RunChoices:
        """Device, model and settings as ``train()`` would choose them."""
        choices = resolve_choices(request, self.events)
        self._model_path = choices.model_path
        return choices

    def train(self) -> str:
        """Train and return the saved adapter's path.

        Ctrl+C (in the main thread) stops as the CLI does: the step in progress finishes, a checkpoint and
        the adapter so far are saved, and ``TrainingInterrupted`` (a KeyboardInterrupt) is raised saying
        how to continue (``llmcustoms resume <id>``); a second Ctrl+C interrupts at once, still keeping a
        checkpoint of the last finished step. ``stop_event.set()`` from another thread stops the same
        way but returns normally (the run's status is then "stopped").
        """
        from llmcustoms.training.interrupts import TrainingInterrupted, graceful_interrupt

        printer = ProgressPrinter() if self.progress else None
        self.stop_event.clear()  # a stop asked of an earlier train() must not end this one
        by_ctrl_c: list[bool] = []
        try:
            with graceful_interrupt(self.stop_event, on_stop=lambda: by_ctrl_c.append(True)):
                self.result = run_training(self._request(), sink=FanoutSink(self.events, self.sink, printer),
                                           stop=self.stop_event)
        finally:
            if printer is not None:
                printer.close()
        self._model_path = self.result.run_dir.read().get("model_path")
        if by_ctrl_c and self.result.status == "stopped":
            run, steps = self.result.run_dir, self.result.steps
            total = (run.read().get("config") or {}).get("max_steps")
            raise TrainingInterrupted(
                f"Training stopped at step {steps}{f' of {total}' if total else ''}: a checkpoint and the adapter "
                f"so far are saved in {run.path}; `llmcustoms resume {run.id}` continues it.", run.id, steps)
        return str(self.result.adapter_path)

    def test_model(self, prompts: list[str] | None = None, compare: bool = False) -> ModelAnswers:
        """Answer ``prompts`` and print them; returns the answers (a list of dicts).

        With no ``prompts``, the run's first held-out questions are asked: facts of the text in a wording
        the model never trained on (the knowledge score's questions), else its example prompts. When the
        run has a knowledge score its headline is printed first ("knows 22 of 30 held-out facts; the base
        model knew 1") and returned as ``.headline`` / ``.knowledge``; the answer to a held-out question
        also carries the ``reference`` sentence of the text and whether it is ``correct`` (the score's rule).
        ``compare=True`` adds the base model's answer (``base_answer``, and ``base_correct``). Each answer of a
        run is followed by the passage of its documents that supports it, or "no passage of your documents
        supports this" (``support`` / ``base_support``: ``Support.to_dict()``).
        """

        run = self.run
        knowledge, probes = _run_knowledge(run)
        if self._chat is None:
            if run is not None:
                self._chat = ChatSession(run.path, settings=self.settings)
            else:
                self._chat = ChatSession(self._model_path or self._resolved_model()[1], settings=self.settings)
        chat = self._chat.load()
        headline = _headline(knowledge) if knowledge else ""
        if headline:
            print(f"Knowledge score: {headline}")
        prompts = list(prompts or [p["question"] for p in probes[:DEFAULT_TEST_QUESTIONS]]
                       or chat.example_prompts[:DEFAULT_TEST_QUESTIONS] or ["What is this material about?"])
        by_question = {" ".join(p["question"].split()): p for p in probes}
        results = ModelAnswers(knowledge=knowledge, headline=headline)
        for prompt in prompts:
            probe = by_question.get(" ".join(str(prompt).split()))
            tuned = chat.answer(prompt, tuned=True)
            entry: dict[str, Any] = {"prompt": prompt, "answer": tuned}
            print(f"\n> {prompt}\n{tuned}")
            _add_support(entry, "support", chat, prompt, tuned)
            if probe is not None:
                entry["reference"] = probe.get("reference", "")
                entry["correct"] = _correct(tuned, probe)
                print(f"  (held-out question; the text says: {entry['reference']} "
                      f"→ {'right' if entry['correct'] else 'wrong'})")
            if compare and chat.has_adapter:
                entry["base_answer"] = chat.answer(prompt, tuned=False)
                print(f"  (base model) {entry['base_answer']}")
                _add_support(entry, "base_support", chat, prompt, entry["base_answer"])
                if probe is not None:
                    entry["base_correct"] = _correct(entry["base_answer"], probe)
            results.append(entry)
        return results

    def knowledge_score(self, recompute: bool = False) -> dict[str, Any]:
        """The run's knowledge score: run.json's ``knowledge`` (``questions``, ``base``, ``tuned``,
        ``open_book`` as fractions 0–1, ``message``, per-question ``rows``…).

        ``recompute=True`` asks the held-out questions again (``llmcustoms eval``: loads the model, slow)
        and stores the new score in run.json. A run from before the score has none: ``questions`` 0, the
        numbers None and a ``message`` saying so. Raises InputError when there is no run yet.
        """
        run = self.run
        if run is None:
            raise InputError("No run to score yet: call train() first, or attach to an earlier run with "
                             "FineTuner.from_run(RUN_ID).")
        if recompute:
            return run_eval.evaluate_run(str(run.path)).to_dict()
        knowledge, _ = _run_knowledge(run)
        if knowledge is None:
            return {"questions": 0, "base": None, "tuned": None, "open_book": None, "rows": [],
                    "message": f"Run {run.id} has no knowledge score (it was trained before LLMCustoms measured "
                               "one, or it has not finished)."}
        return knowledge

    def close(self) -> None:
        """Free the chat model's memory."""
        if self._chat is not None:
            self._chat.close()
            self._chat = None




def _run_knowledge(run) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(run.json's ``knowledge`` or None, the held-out questions: ``knowledge_probes``, else the score's rows)."""
    if run is None:
        return None, []
    data = run.read()
    knowledge = data.get("knowledge") if isinstance(data.get("knowledge"), dict) else None
    source = data.get("knowledge_probes") or (knowledge or {}).get("rows") or []
    probes = [p for p in source if isinstance(p, dict) and str(p.get("question") or "").strip()]
    return (dict(knowledge) if knowledge else None), probes


def _headline(knowledge: dict[str, Any]) -> str:
    return KnowledgeReport.from_dict(knowledge).headline()


def _correct(answer: str, probe: dict[str, Any]) -> bool:
    return bool(is_correct(answer, str(probe.get("span") or "")))
