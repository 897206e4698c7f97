"""How many training examples a folder makes: one number, computed one way, for every place that shows it.

``validate``'s summary, the data screen, its preview, ``prepare`` and training all count with
``build_examples`` itself (offline, with the preset's pairs per chunk), never with a formula of their
own. A folder small enough to build in a few seconds is counted exactly; a larger one is counted on
an evenly spread sample of its files and scaled by characters, and the number says it is an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcustoms.data.report import DataReport

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

    def number(self) -> str:
        """'700', or 'about 76,000 (an estimate)': the count as the data screen shows it."""
        return f"{self.examples:,}" if self.exact else f"about {self.examples:,} (an estimate)"


def default_pairs_per_chunk(preset: str | None = None) -> int:
    """The pairs per chunk training uses: ``preset``'s, else the default preset's (DEFAULT_PRESET)."""
    from llmcustoms.training.presets import get_preset

    if not preset:
        try:
            from llmcustoms.utils.config import Config

            preset = str(Config().load_env_config().get("DEFAULT_PRESET") or "quality")
        except Exception:  # noqa: BLE001 - a bad setting is reported by the command that needs it
            preset = "quality"
    return int(get_preset(preset).get("qa_pairs_per_chunk", 3))


def _sample(report: DataReport, sample_chars: int) -> list:
    """Usable files spread evenly over the (sorted) folder until they hold about ``sample_chars``."""
    usable = [f for f in report.files if f.status != "skipped"]
    share = min(1.0, sample_chars / max(1, report.total_chars))
    wanted = max(1, round(len(usable) * share))
    step = len(usable) / wanted
    return [usable[int(i * step)] for i in range(wanted)]


def count_examples(report: DataReport, pairs_per_chunk: int | None = None,
                   exact_limit_chars: int = EXACT_LIMIT_CHARS, sample_chars: int = SAMPLE_CHARS) -> ExampleCount:
    """The examples ``build_examples(report, qa='offline')`` makes: built and counted, or estimated from a sample.

    Raises DataError (the sentence ``build_examples`` uses) when the folder makes none, so a folder
    that ``validate`` passes is one that ``prepare`` can build from.
    """
    from llmcustoms.data.examples import build_examples
    from llmcustoms.data.report import DataReport

    report.raise_if_blocked()
    pairs = pairs_per_chunk or default_pairs_per_chunk()
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
    estimate = round(len(built) * report.total_chars / max(1, sample.total_chars))
    return ExampleCount(estimate, exact=False, sampled_files=len(files), total_files=len(usable))
