"""A run's data: the folder read once, examples built (asking before any text leaves), facts held out,
examples split, tokenized and packed into rows (``prepare_data`` → ``PreparedData``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmcustoms.data.examples import build_examples, choose_generator
from llmcustoms.data.packing import pack_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.split import split_examples
from llmcustoms.data.tokenize import tokenize_examples
from llmcustoms.errors import DataError
from llmcustoms.evaluation.split import split_facts, training_examples
from llmcustoms.planning.presets import get_preset
from llmcustoms.qa.progress import GenerationProgress
from llmcustoms.training.dataset_check import split_dataset_report
from llmcustoms.training.replay import (
    EVERYDAY_SHARE,
    ReplaySource,
    replay_count,
    replay_examples,
    swapped_questions,
)
from llmcustoms.training.request import ALLOW_SEND_HINT, TrainRequest


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
    dataset: Any = None  # data.dataset_report.DatasetReport: lengths (by the tokenizer), duplicates, leakage
    replay_examples: int = 0  # the base model's own answers trained beside the folder's examples


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


def prepare_data(request: TrainRequest, tokenizer: Any, max_seq_len: int, on_message: Callable[[str], None],
                 warn: Callable[[str], None] | None = None, replay: ReplaySource | None = None,
                 replay_share: float = 0.0) -> PreparedData:
    """Validate the folder, build examples, split, tokenize and pack.

    ``warn`` (default ``on_message``) gets what the user must not miss: files that disappeared or
    became unreadable while the folder was read (the run trains on the others).
    ``replay``: the base model's answers to everyday requests (``training.replay``); ``replay_share`` times
    the number of training examples of them are trained beside the folder's (never held out or scored).
    """

    split = split_training_examples(request, on_message, warn)
    train, held_out, built = split.train, split.held_out, split.built
    replayed = []
    if replay is not None:
        count = replay_count(len(train), replay.available, replay_share)
        everyday = round(count * EVERYDAY_SHARE)
        swapped = swapped_questions([e.prompt for e in train if e.kind == "fact"], count - everyday, request.seed)
        replayed = replay_examples(replay.pairs(count - len(swapped)) + replay.pairs_for(swapped))
    if replayed:
        asked = "everyday requests, and your questions asked of well-known names" if swapped else "everyday requests"
        on_message(f"Replay: {len(replayed)} of the base model's own answers ({asked}) trained beside your "
                   f"{len(train)} examples, so it keeps what it knew.")
        train = train + replayed
    # The dataset report before training: lengths with the model's own tokenizer, duplicates, leakage.
    dataset = split_dataset_report(built, train, split.knowledge, tokenizer, max_seq_len,
                                   model=str(getattr(tokenizer, "name_or_path", "") or "the model"))
    for line in dataset.summary_lines():
        if not line.startswith(" "):  # the totals; the examples named are in validate's report
            on_message(line)
    train_ds = tokenize_examples(train, tokenizer, max_seq_len)
    eval_ds = tokenize_examples(held_out, tokenizer, max_seq_len)
    if len(train_ds) == 0 or len(eval_ds) == 0:
        raise DataError(f"No example keeps part of its answer within {max_seq_len} tokens: allow longer "
                        "sequences (max_seq_len) or write shorter passages.")
    return PreparedData(
        train_rows=pack_examples(train_ds, max_seq_len), eval_rows=pack_examples(eval_ds, max_seq_len),
        train_examples=len(train) - len(replayed), eval_examples=len(held_out), replay_examples=len(replayed),
        qa_mode=built.qa_mode, example_prompts=[e.prompt for e in held_out[:5]],
        notes=[built.message] if built.message else [],
        knowledge=split.knowledge, dataset=dataset,
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
    ablation = benchmark_ablation(request)
    if ablation in ("no_watch", "no_replay"):  # not about the examples: read by the trainer
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


def benchmark_ablation(request: TrainRequest) -> str | None:
    """The knowledge benchmark's ablation for this run (``request.extra["ablation"]`` or
    ``LLMCUSTOMS_ABLATION``): a benchmark-only switch, never set by the product itself."""
    return request.extra.get("ablation") or os.environ.get("LLMCUSTOMS_ABLATION") or None


#: The most examples the held-out loss is computed on.
MAX_EVAL_EXAMPLES = 300

#: Ablations for the knowledge benchmark (request.extra["ablation"]).
ABLATIONS = ("topic_examples", "one_phrasing", "no_passages", "no_replay", "span_first")


def _ablate(ablation: str, examples: list[Any], report: Any, request: TrainRequest, pairs: int) -> list[Any]:
    """The training examples without one part: 'topic_examples' (the earlier topic-level offline examples
    instead of fact-level ones), 'one_phrasing' (one question per fact), 'no_passages' (no plain text),
    'span_first' (facts answered span first, then by their sentence), 'no_replay' (read by the trainer)."""

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
    if ablation == "span_first":  # the fact questions answered span first, then by their sentence
        return build_examples(report, qa="offline", pairs_per_chunk=pairs, answer_first=True).examples
    raise ValueError(f"unknown ablation {ablation!r}; one of {', '.join(ABLATIONS)}")
