"""The dataset report of a folder or of a run's split: the examples built, held-out facts chosen, then
``data.dataset_report`` on them (here, in the training layer, because leakage needs ``evaluation.split``).
"""

from __future__ import annotations

from typing import Any

from llmcustoms.data.count import EXACT_LIMIT_CHARS, default_pairs_per_chunk, sample_report
from llmcustoms.data.dataset_report import DatasetReport, build_dataset_report, tokenizer_counter
from llmcustoms.data.examples import build_examples
from llmcustoms.data.report import DataReport
from llmcustoms.evaluation.split import split_facts, training_examples
from llmcustoms.planning.presets import get_preset


def training_limit(preset: str | None, settings: Any = None) -> tuple[int, str]:
    """The tokens per training row of ``preset`` (DEFAULT_PRESET's when None) and a label naming it."""
    if not preset:
        preset = str(getattr(settings, "default_preset", None) or "quality")
    return int(get_preset(preset).get("max_seq_len", 512)), preset


def folder_dataset_report(report: DataReport, *, preset: str | None = None, settings: Any = None, seed: int = 42,
                          tokenizer: Any = None, model: str = "", max_seq_len: int | None = None) -> DatasetReport | None:
    """The dataset report of a checked folder, built offline (nothing is sent anywhere); None when blocked.

    Without ``tokenizer`` the lengths are an estimate (no model is loaded: ``validate`` stays fast). A folder
    over ``EXACT_LIMIT_CHARS`` is reported on an evenly spread sample of its files, and says so.
    """
    if not report.ok or not report.files:
        return None
    limit, preset = training_limit(preset, settings) if max_seq_len is None else (max_seq_len, preset or "")
    source = sample_report(report) if report.total_chars > EXACT_LIMIT_CHARS else report
    built = build_examples(source, qa="offline", pairs_per_chunk=default_pairs_per_chunk(preset, settings),
                           settings=settings)
    dataset = built_dataset_report(built, limit, seed=seed, tokenizer=tokenizer, model=model)
    if source is not report:
        dataset.sampled_files, dataset.total_files = source.usable_files, report.usable_files
    return dataset


def built_dataset_report(built: Any, limit: int, *, seed: int = 42, tokenizer: Any = None,
                         model: str = "") -> DatasetReport:
    """The dataset report of an ``ExampleSet`` (``build_examples``'s): facts held out as a run holds them
    out (``split_facts`` with ``seed``), lengths with ``tokenizer`` when given, else estimated."""
    knowledge = split_facts(built.facts, seed=seed)
    return split_dataset_report(built, training_examples(built.examples, built.facts, knowledge), knowledge,
                                tokenizer, limit, model)


def split_dataset_report(built: Any, train: list[Any], knowledge: Any, tokenizer: Any, max_seq_len: int,
                         model: str = "") -> DatasetReport:
    """The dataset report of a run's examples (``ExampleSplit``'s parts), lengths counted with its tokenizer."""
    return build_dataset_report(
        built.examples, max_seq_len, repeats=getattr(built, "repeats", ()), training=train,
        held=knowledge.held_questions if knowledge is not None and knowledge.enough else None,
        count=tokenizer_counter(tokenizer) if tokenizer is not None else None,
        counted_with=f"the tokenizer of {model}" if model else "")
