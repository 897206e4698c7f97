"""The dataset report: what the examples are like before anything trains on them.

Three checks, each naming where a problem comes from (the file of the examples concerned):

- **Lengths** against the training limit (``max_seq_len``): how many examples are longer, so training
  would cut them, and in which files. Counted with the model's tokenizer when the caller has one
  (``prepare``, the data screen's preview), else estimated from characters (``validate``: fast, loads no
  model) — the report says which.
- **Duplicates**: exact repeats (same question and answer, ignoring case and spacing; ``build_examples``
  keeps one of each) and near-duplicates that stay (the same words, ignoring case, punctuation and order,
  in examples from different places; the phrasings of one fact are made on purpose and not counted).
- **Leakage**: a held-out question of the knowledge score that is also among the training questions,
  word for word or with the same words in another order. The split itself belongs to
  ``evaluation.split``, a layer above this one, so callers pass its held questions in as plain strings.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmcustoms.text.types import Example

#: Characters per token of English text (BPE tokenizers); Chinese, Japanese and Korean: a token each.
CHARS_PER_TOKEN = 4
#: Tokens a chat template adds around each message, in the estimate (role markers, end of turn).
TEMPLATE_TOKENS_PER_MESSAGE = 5
#: How many duplicates, leaks and long examples are listed by name (all are counted).
SHOWN = 10

_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# An example's source is "file:12", "file:qa3", "file#2:p5" or a fact id "file:s4:1" (#N: a piece of a huge file).
_SOURCE = re.compile(r"^(?P<file>.+?)(?:#\d+)?:(?:qa\d+|p\d+|s\d+:\d+|\d+)$")


def source_file(source: str) -> str:
    """The file an example came from, from its ``source`` ("notes/a.pdf:s3:1" → "notes/a.pdf")."""
    match = _SOURCE.match(source)
    return match.group("file") if match else source


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.casefold()))


def estimate_tokens(example: Example) -> int:
    """Tokens of ``example`` as a chat row, estimated: characters ÷ 4 (a CJK character: one) plus the template."""
    total = 0
    for message in example.messages:
        content = str(message.get("content", ""))
        cjk = len(_CJK.findall(content))
        total += (len(content) - cjk + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + cjk + TEMPLATE_TOKENS_PER_MESSAGE
    return total


def tokenizer_counter(tokenizer: Any) -> Callable[[Sequence[Example]], list[int]]:
    """Counts examples' tokens with ``tokenizer``: its contents tokenized in one fast batch, plus what the
    chat template adds for each message layout (rendered once per layout, with one-token contents)."""
    overhead: dict[tuple[str, ...], int] = {}

    def template_tokens(roles: tuple[str, ...]) -> int:
        if roles not in overhead:
            try:
                filled = tokenizer.apply_chat_template([{"role": r, "content": "x"} for r in roles], tokenize=True)
                if hasattr(filled, "keys"):  # newer tokenizers return a BatchEncoding
                    filled = filled["input_ids"]
                one = len(tokenizer("x", add_special_tokens=False)["input_ids"])
                overhead[roles] = max(0, len(filled) - one * len(roles))
            except Exception:  # noqa: BLE001 - no chat template: the contents alone
                overhead[roles] = 0
        return overhead[roles]

    def count(examples: Sequence[Example]) -> list[int]:
        contents = [str(m.get("content", "")) for e in examples for m in e.messages]
        ids = tokenizer(contents, add_special_tokens=False)["input_ids"] if contents else []
        lengths: list[int] = []
        at = 0
        for example in examples:
            n = len(example.messages)
            lengths.append(sum(len(row) for row in ids[at: at + n])
                           + template_tokens(tuple(str(m.get("role", "")) for m in example.messages)))
            at += n
        return lengths

    return count


@dataclass
class LongExample:
    """One example over the limit: where it comes from and how long it is."""

    source: str
    file: str
    tokens: int


@dataclass
class Lengths:
    """The examples' token lengths against the training limit."""

    limit: int
    counted_with: str  # "the tokenizer of <model>", or "an estimate (characters ÷ 4)"
    exact: bool  # True when counted with the model's tokenizer
    examples: int = 0
    longest: int = 0
    median: int = 0
    over_limit: int = 0  # examples longer than ``limit``: training cuts them
    over_by_file: dict[str, int] = field(default_factory=dict)  # file → examples over the limit
    longest_over: list[LongExample] = field(default_factory=list)  # the longest few over the limit


@dataclass
class Duplicate:
    """Two examples that say the same: ``kind`` 'exact' (one was left out) or 'near' (both are trained on)."""

    kind: str
    question: str
    sources: list[str]
    files: list[str]


@dataclass
class Leak:
    """A held-out question (never to be trained on) that a training question repeats."""

    held_question: str
    training_question: str
    how: str  # "word for word" or "the same words in another order"
    fact_id: str
    source: str  # the training example's
    file: str
    same_fact: bool = False  # the training question is another phrasing of the held-out fact itself


@dataclass
class DatasetReport:
    """What the examples are like before training: lengths, duplicates and leakage, each with its files."""

    lengths: Lengths
    exact_duplicates: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)  # exact ones first, then near ones (SHOWN each)
    near_duplicates: int = 0
    leaks: list[Leak] = field(default_factory=list)
    held_questions: int = 0  # how many held-out questions were checked (0: no knowledge split was made)
    sampled_files: int = 0  # > 0: the examples were built from this many of ``total_files`` (a large folder)
    total_files: int = 0

    @property
    def leaked(self) -> int:
        """How many training questions repeat a held-out one."""
        return len(self.leaks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``validate --json``, ``prepare --json``)."""
        data = asdict(self)
        data["leaked"] = self.leaked
        return data

    def short_lines(self) -> list[str]:
        """Two lines for a narrow screen (the TUI's data screen): lengths; duplicates and leakage."""
        lengths = self.lengths
        how = "by the tokenizer" if lengths.exact else "estimated"
        if lengths.over_limit:
            files = ", ".join(f"{name} {n:,}" for name, n in sorted(lengths.over_by_file.items(),
                                                                    key=lambda kv: -kv[1])[:3])
            first = (f"Too long: {lengths.over_limit:,} of {lengths.examples:,} examples over {lengths.limit:,} "
                     f"tokens ({how}) would be cut: {files}")
        else:
            first = (f"Lengths: all {lengths.examples:,} examples fit in {lengths.limit:,} tokens ({how}; longest "
                     f"{lengths.longest:,})")
        leakage = ("not checked (too few facts)" if not self.held_questions else
                   f"{self.leaked:,} held-out question(s) also trained on" if self.leaks else "none")
        return [first, f"Duplicates: {self.exact_duplicates:,} exact (kept once), {self.near_duplicates:,} near · "
                       f"Leakage: {leakage}"]

    def summary_lines(self) -> list[str]:
        """Short human lines: lengths, duplicates, leakage; the files concerned named."""
        lengths = self.lengths
        where = "" if not self.sampled_files else (f" (examples built from {self.sampled_files:,} of "
                                                   f"{self.total_files:,} files, a sample)")
        lines = [f"Dataset: {lengths.examples:,} examples{where}; tokens counted with {lengths.counted_with}; "
                 f"longest {lengths.longest:,}, median {lengths.median:,}, limit {lengths.limit:,}"]
        if lengths.over_limit:
            files = ", ".join(f"'{name}' ({n:,})" for name, n in
                              sorted(lengths.over_by_file.items(), key=lambda kv: -kv[1])[:5])
            more = len(lengths.over_by_file) - 5
            lines.append(f"Too long: {lengths.over_limit:,} example(s) over {lengths.limit:,} tokens would be cut, "
                         f"from {files}" + (f" and {more} more file(s)" if more > 0 else ""))
        else:
            lines.append(f"Too long: none (every example fits in {lengths.limit:,} tokens)")
        lines.append(f"Duplicates: {self.exact_duplicates:,} exact (one of each kept), "
                     f"{self.near_duplicates:,} near (the same words in another order)")
        for dup in self.duplicates:
            places = " = ".join(f"'{s}'" for s in dup.sources[:3])
            lines.append(f"  {dup.kind}: {dup.question[:80]!r} in {places}")
        if not self.held_questions:
            lines.append("Leakage: not checked (too few facts for a knowledge score)")
        elif not self.leaks:
            lines.append(f"Leakage: none (no training question repeats one of the {self.held_questions:,} "
                         f"held-out questions)")
        else:
            lines.append(f"Leakage: {self.leaked:,} training question(s) repeat a held-out question "
                         f"(the score would count them as known)")
            for leak in self.leaks[:SHOWN]:
                lines.append(f"  {leak.how}: {leak.held_question!r} ~ {leak.training_question!r} in '{leak.source}'")
        return lines


def measure_lengths(examples: Sequence[Example], limit: int,
                    count: Callable[[Sequence[Example]], list[int]] | None = None,
                    counted_with: str = "") -> Lengths:
    """Token lengths of ``examples`` against ``limit``: with ``count`` (a tokenizer's), else estimated."""
    tokens = count(examples) if count is not None else [estimate_tokens(e) for e in examples]
    result = Lengths(limit=limit, exact=count is not None, examples=len(examples),
                     counted_with=counted_with or ("the model's tokenizer" if count is not None
                                                   else "an estimate (characters ÷ 4; no model loaded)"))
    if not tokens:
        return result
    ordered = sorted(tokens)
    result.longest, result.median = ordered[-1], ordered[len(ordered) // 2]
    over = [(n, e) for n, e in zip(tokens, examples, strict=True) if n > limit]
    result.over_limit = len(over)
    by_file: Counter[str] = Counter(source_file(e.source) for _, e in over)
    result.over_by_file = dict(by_file.most_common())
    result.longest_over = [LongExample(e.source, source_file(e.source), n)
                           for n, e in sorted(over, key=lambda ne: -ne[0])[:SHOWN]]
    return result


def find_near_duplicates(examples: Sequence[Example]) -> list[list[Example]]:
    """Groups of examples with the same words in question and answer (case, punctuation and order aside)
    that come from different places (one fact's own phrasings share a source and are not counted)."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Example]] = defaultdict(list)
    for example in examples:
        key = (tuple(sorted(_words(example.prompt))), tuple(sorted(_words(example.answer))))
        if key[0] or key[1]:
            groups[key].append(example)
    near: list[list[Example]] = []
    for members in groups.values():
        distinct: dict[str, Example] = {}
        for example in members:
            distinct.setdefault(example.source, example)
        if len(distinct) > 1:
            near.append(list(distinct.values()))
    return near


def find_leaks(held: dict[str, set[str]], training: Iterable[Example]) -> list[Leak]:
    """Training questions that repeat a held-out one (``held``: fact id → its held-out questions), word for
    word (case and punctuation aside) or with the same words in another order."""
    exact: dict[tuple[str, ...], tuple[str, str]] = {}
    reordered: dict[tuple[str, ...], tuple[str, str]] = {}
    for fact_id, questions in held.items():
        for question in questions:
            words = _words(question)
            if words:
                exact.setdefault(words, (fact_id, question))
                reordered.setdefault(tuple(sorted(words)), (fact_id, question))
    leaks: list[Leak] = []
    for example in training:
        if example.kind == "passage":  # plain text to continue, not a question
            continue
        words = _words(example.prompt)
        if words in exact:
            how, (fact_id, question) = "word for word", exact[words]
        elif tuple(sorted(words)) in reordered:
            how, (fact_id, question) = "the same words in another order", reordered[tuple(sorted(words))]
        else:
            continue
        leaks.append(Leak(held_question=question, training_question=example.prompt, how=how, fact_id=fact_id,
                          source=example.source, file=source_file(example.source),
                          same_fact=example.source == fact_id))
    return leaks


def build_dataset_report(examples: Sequence[Example], limit: int, *,
                         repeats: Sequence[tuple[Example, Example]] = (),
                         training: Sequence[Example] | None = None,
                         held: dict[str, set[str]] | None = None,
                         count: Callable[[Sequence[Example]], list[int]] | None = None,
                         counted_with: str = "") -> DatasetReport:
    """The report on ``examples`` (every example made): lengths against ``limit`` (with ``count``, a
    tokenizer's, else estimated), ``repeats`` (``ExampleSet.repeats``: exact duplicates left out) and near
    duplicates, and leakage of ``held`` questions into ``training`` (the examples trained on)."""
    report = DatasetReport(lengths=measure_lengths(examples, limit, count, counted_with))
    report.exact_duplicates = len(repeats)
    for repeat, kept in repeats[:SHOWN]:
        report.duplicates.append(Duplicate("exact", repeat.prompt, [kept.source, repeat.source],
                                           [source_file(kept.source), source_file(repeat.source)]))
    near = find_near_duplicates(examples)
    report.near_duplicates = sum(len(group) - 1 for group in near)
    for group in near[:SHOWN]:
        report.duplicates.append(Duplicate("near", group[0].prompt, [e.source for e in group],
                                           [source_file(e.source) for e in group]))
    if held:
        report.held_questions = sum(len(q) for q in held.values())
        report.leaks = find_leaks(held, training if training is not None else examples)
    return report
