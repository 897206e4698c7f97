"""How many training examples a folder makes: one number, computed one way, for every place that shows it.

``validate``'s summary, the data screen, its preview, ``prepare`` and training all count with
``build_examples`` itself (offline, with the preset's pairs per chunk), never with a formula of their
own. A folder small enough to build in a few seconds is counted exactly; a larger one is built on an
evenly spread sample of its files and scaled by the folder's distinct sentences (repeats across files
make no new examples), and the number says it is an estimate (within a few per cent on the folders
measured: 10,000 similar notes, 280 copies of examples/data, 2,000 generated files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmcustoms.data.documents import iter_documents
from llmcustoms.data.examples import build_examples
from llmcustoms.data.report import DataReport
from llmcustoms.planning.presets import get_preset
from llmcustoms.text.sentences import split_sentences
from llmcustoms.utils.config import as_settings

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings

#: Up to this many characters of text the examples are built and counted exactly (~1-3 s offline).
EXACT_LIMIT_CHARS = 1_000_000
#: A larger folder is estimated from files holding about this many characters, spread over the folder.
SAMPLE_CHARS = 300_000


@dataclass(frozen=True)
class ExampleCount:
    """The number of examples a folder makes offline, and whether it was built or estimated."""

    examples: int
    exact: bool
    sampled_files: int = 0
    total_files: int = 0

    def describe(self) -> str:
        """'700 examples', or 'about 76,000 examples (an estimate from 1,200 of 20,000 files)'."""
        if self.exact:
            return f"{self.examples:,} examples"
        return (f"about {self.examples:,} examples (an estimate from {self.sampled_files:,} of "
                f"{self.total_files:,} files)")


def default_pairs_per_chunk(preset: str | None = None, settings: Settings | None = None) -> int:
    """The pairs per chunk training uses: ``preset``'s, else the default preset's (DEFAULT_PRESET of
    ``settings``, read now when None)."""
    if not preset:
        try:
            preset = str(as_settings(settings).default_preset or "quality")
        except Exception:  # noqa: BLE001 - a bad setting is reported by the command that needs it
            preset = "quality"
    return int(get_preset(preset).get("qa_pairs_per_chunk", 3))


def sample_report(report: DataReport, sample_chars: int = SAMPLE_CHARS) -> DataReport:
    """``report`` with only the files of ``_sample`` (the whole report when that is every usable file)."""
    files = _sample(report, sample_chars)
    if len(files) == report.usable_files:
        return report
    return DataReport(root=report.root, files=files, total_chars=sum(f.chars for f in files),
                      max_file_bytes=report.max_file_bytes, _texts=report._texts)


def _sample(report: DataReport, sample_chars: int) -> list:
    """Usable files spread evenly over the (sorted) folder until they hold about ``sample_chars``."""
    usable = [f for f in report.files if f.status != "skipped"]
    share = min(1.0, sample_chars / max(1, report.total_chars))
    wanted = max(1, round(len(usable) * share))
    step = len(usable) / wanted
    return [usable[int(i * step)] for i in range(wanted)]


def count_examples(report: DataReport, pairs_per_chunk: int | None = None,
                   exact_limit_chars: int = EXACT_LIMIT_CHARS, sample_chars: int = SAMPLE_CHARS,
                   settings: Settings | None = None) -> ExampleCount:
    """The examples ``build_examples(report, qa='offline')`` makes: built and counted, or estimated from a sample.

    Raises DataError (the sentence ``build_examples`` uses) when the folder makes none, so a folder
    that ``validate`` passes is one that ``prepare`` can build from. ``settings``: the caller's, else the
    report's own (``validate_folder(..., settings=)``), else read now.
    """
    report.raise_if_blocked()
    settings = settings if settings is not None else report.settings
    pairs = pairs_per_chunk or default_pairs_per_chunk(settings=settings)
    usable = [f for f in report.files if f.status != "skipped"]
    if report.total_chars <= exact_limit_chars:
        built = build_examples(report, qa="offline", pairs_per_chunk=pairs)
        return ExampleCount(len(built), exact=True, sampled_files=len(usable), total_files=len(usable))
    files = _sample(report, sample_chars)
    sample = DataReport(root=report.root, files=files, total_chars=sum(f.chars for f in files),
                        max_file_bytes=report.max_file_bytes)
    if len(files) == len(usable):
        built = build_examples(report, qa="offline", pairs_per_chunk=pairs)
        return ExampleCount(len(built), exact=True, sampled_files=len(usable), total_files=len(usable))
    built = build_examples(sample, qa="offline", pairs_per_chunk=pairs)
    estimate = _extrapolate(built.examples, report, sample)
    return ExampleCount(estimate, exact=False, sampled_files=len(files), total_files=len(usable))


def _distinct_sentences(report: DataReport) -> tuple[int, int]:
    """Distinct sentences, and distinct (previous, sentence) pairs, in the report's usable files.

    Cheap next to building (no fact extraction); hashes are kept, not the sentences themselves.
    """

    singles: set[int] = set()
    pairs: set[int] = set()
    for document in iter_documents(report):
        previous = ""
        for raw in split_sentences(document.text):
            sentence = " ".join(raw.split())
            singles.add(hash(sentence))
            pairs.add(hash((previous, sentence)))
            previous = sentence
    return len(singles), len(pairs)


def _extrapolate(examples: list, report: DataReport, sample: DataReport) -> int:
    """The folder's examples from a sample's, allowing for the repeats a whole folder has.

    Examples are made per file, but files that share a sentence make the same examples, and those are
    removed once, when the whole folder is built: a plain scale-up by characters overshoots (by 40 % on
    10,000 similar notes). So the examples made from sentences are scaled by how many *distinct*
    sentences the folder has against the sample (counted over the whole folder: no build needed).
    A question may depend on the sentence before it, so that is counted both ways, per sentence (too
    few) and per sentence with the one before (too many), and the two are averaged. Passages name their
    file, so they never repeat: they are scaled by characters.
    """
    passages = sum(1 for e in examples if e.kind == "passage")
    by_chars = report.total_chars / max(1, sample.total_chars)
    singles, pairs = _distinct_sentences(report)
    sample_singles, sample_pairs = _distinct_sentences(sample)
    by_sentences = (singles / max(1, sample_singles) + pairs / max(1, sample_pairs)) / 2
    return round(passages * by_chars + (len(examples) - passages) * by_sentences)
