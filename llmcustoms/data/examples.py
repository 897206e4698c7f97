"""From a validated folder to chat examples: explicit Q&A from the text plus generated ones from prose.

``build_examples`` streams the documents, takes the explicit pairs out (``qa_extract``), chunks
the remaining prose (``chunking``) and hands the chunks to a generator: Groq (or any
OpenAI-compatible server) when asked for or when ``GROQ_API_KEY`` is set, the offline generator
otherwise. Duplicates are removed. Nothing is sent to a server before ``confirm(plan)`` says yes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llmcustoms.data.chatfiles import read_chat_file
from llmcustoms.data.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, chunk_text
from llmcustoms.data.documents import iter_documents
from llmcustoms.data.facts import Fact, fact_examples, facts_from_text, passage_examples
from llmcustoms.data.qa_extract import extract_qa
from llmcustoms.data.report import DataReport
from llmcustoms.data.types import Chunk, Example
from llmcustoms.errors import ConfigError, DataError, GeneratorError
from llmcustoms.qa.generator import QAGenerator
from llmcustoms.qa.offline import OfflineGenerator
from llmcustoms.text.terms import title_from_source
from llmcustoms.utils.config import as_settings
from llmcustoms.utils.gcpause import paused_gc

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings

QAMode = Literal["auto", "offline", "groq"]
QA_MODES = ("auto", "offline", "groq")


@dataclass
class ExampleSet:
    """The examples built from a folder and how they were made.

    ``qa_mode`` is the generator actually used ('offline' or 'groq'); ``message`` one sentence
    for the user; ``counts`` has 'explicit', 'generated', 'offline', 'duplicates', 'chunks', 'documents'.
    """

    examples: list[Example]
    qa_mode: str
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)  # every checkable fact (for the knowledge score)
    #: Files that disappeared or became unreadable while the folder was read (relative paths), and the
    #: sentence that says so; empty when the examples come from every file the check found.
    missing: list[str] = field(default_factory=list)
    missing_message: str = ""
    #: Exact repeats left out, each as (the repeat, the example kept): the dataset report names their files.
    repeats: list[tuple[Example, Example]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def dedupe_examples(examples: list[Example]) -> list[Example]:
    """Examples without repeats (same prompt and answer, ignoring case and spacing); first one kept."""
    return dedupe_with_repeats(examples)[0]


def dedupe_with_repeats(examples: list[Example]) -> tuple[list[Example], list[tuple[Example, Example]]]:
    """``dedupe_examples``'s result, and each repeat left out as (the repeat, the example kept instead)."""
    seen: dict[tuple[str, str], Example] = {}
    unique: list[Example] = []
    repeats: list[tuple[Example, Example]] = []
    for example in examples:
        key = (_norm(example.prompt), _norm(example.answer))
        kept = seen.get(key)
        if kept is not None:
            repeats.append((example, kept))
            continue
        seen[key] = example
        unique.append(example)
    return unique, repeats


def _say(on_message: Callable[[str], None] | None, text: str) -> None:
    if on_message is not None:
        on_message(text)


def _groq_generator(config: dict[str, Any], pairs_per_chunk: int) -> QAGenerator:
    try:
        from llmcustoms.qa.groq import generator_from_config
    except ImportError as exc:
        raise ConfigError(f"Groq generation is not available in this installation ({exc}); use --qa offline.") from None
    return generator_from_config(config, pairs_per_chunk)


def choose_generator(
    qa: str, pairs_per_chunk: int = 3, on_message: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> QAGenerator:
    """The generator for ``qa``: 'offline', 'groq' (needs GROQ_API_KEY) or 'auto' (Groq when the key is set).

    ``settings``: the caller's resolved settings (read now when None)."""
    if qa not in QA_MODES:
        raise ConfigError(f"The Q&A mode must be one of {', '.join(QA_MODES)}, not {qa!r}.")
    if qa == "offline":
        return OfflineGenerator(pairs_per_chunk)

    config = as_settings(settings).to_dict()
    if not config.get("GROQ_API_KEY"):
        if qa == "groq":
            raise ConfigError("Groq generation needs GROQ_API_KEY; put GROQ_API_KEY=... in .env or the environment, "
                              "or use --qa offline.")
        _say(on_message, "No GROQ_API_KEY: using offline examples built from your text "
                         "(set GROQ_API_KEY in .env for generated Q&A).")
        return OfflineGenerator(pairs_per_chunk)
    return _groq_generator(config, pairs_per_chunk)


def _read_documents(report: DataReport, explicit: list[Example], chunks: list[Chunk],
                    max_chunk_chars: int, overlap_chars: int, facts: list[Fact] | None = None,
                    passages: list[Example] | None = None) -> int:
    """Append each document's written Q&A to ``explicit``, its prose chunks to ``chunks``, its facts to
    ``facts`` and its text as continuation examples to ``passages``; count documents."""

    documents = 0
    counters: dict[str, int] = {}
    for document in iter_documents(report):
        documents += 1
        pairs, prose = extract_qa(document.text)
        qa_key = f"{document.relpath}#qa"  # numbering continues across the pieces of a huge file
        for pair in pairs:
            number = counters.get(qa_key, 0)
            counters[qa_key] = number + 1
            explicit.append(Example(
                messages=[{"role": "user", "content": pair.question}, {"role": "assistant", "content": pair.answer}],
                source=f"{document.relpath}:qa{number}", kind="explicit",
            ))
        if facts is not None:
            source = document.relpath if not document.part else f"{document.relpath}#{document.part}"
            facts.extend(facts_from_text(prose, source))
        if passages is not None:
            passages.extend(passage_examples(prose, f"{document.relpath}#{document.part}" if document.part
                                             else document.relpath, title_from_source(document.relpath)))
        index = counters.get(document.relpath, 0)
        for piece in chunk_text(prose, max_chunk_chars, overlap_chars):
            chunks.append(Chunk(text=piece, source=f"{document.relpath}:{index}"))
            index += 1
        counters[document.relpath] = index
    return documents


def _chat_examples(report: DataReport) -> list[Example]:
    """The examples of the folder's chat ``.jsonl`` files, used as they are (bad lines were named by the check)."""
    examples: list[Example] = []
    for file_report in report.files:
        if file_report.format != "jsonl" or file_report.status == "skipped":
            continue
        try:
            examples.extend(read_chat_file(report.root / file_report.relpath, file_report.relpath).examples)
        except OSError:
            file_report.vanished = True
            if file_report.relpath not in report.vanished:
                report.vanished.append(file_report.relpath)
    return examples


def _offline_chunks(chunks: list[Chunk], facts: list[Fact]) -> list[Chunk]:
    """The chunks the offline generator gets: those of documents without facts.

    Fact-level Q&A replaces the topic-level examples where a document states facts; a chunk without
    any (a poem, a list) still gets the generator's examples, so training always has data. Used on
    every offline path (chosen, not confirmed, fallen back to), so each counts the same examples.
    """
    if not facts:
        return chunks
    with_fact = {f.source for f in facts}
    return [c for c in chunks if c.source.rsplit(":", 1)[0] not in with_fact]


def build_examples(
    report: DataReport,
    qa: QAMode = "auto",
    generator: QAGenerator | None = None,
    pairs_per_chunk: int = 3,
    confirm: Callable[[Any], bool] | None = None,
    on_message: Callable[[str], None] | None = None,
    max_chunk_chars: int = DEFAULT_MAX_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    progress: Callable[[int, int], None] | None = None,
    with_facts: bool = True,
    settings: Settings | None = None,
    answer_first: bool = False,
) -> ExampleSet:
    """Examples from every usable file of ``report`` (raises DataError if the report is blocked).

    Explicit Q&A pairs become examples directly (kind 'explicit'); the rest of the text is cut
    into chunks for ``generator`` (chosen from ``qa`` when not given). A generator with a
    ``plan(chunks)`` method (a server) is only used after ``confirm(plan)`` returns True; when it
    returns False the offline generator is used instead, and ``on_message`` says so. ``settings``: the
    caller's resolved settings, for choosing the generator (read now when None and needed).
    ``answer_first``: facts answered span first (``facts.fact_answer``; only the benchmark's ``span_first``).
    """
    report.raise_if_blocked()
    if generator is None:
        generator = choose_generator(qa, pairs_per_chunk, on_message, settings)

    explicit: list[Example] = []
    chunks: list[Chunk] = []
    facts: list[Fact] = []
    passages: list[Example] = []
    with paused_gc():  # many small objects, no cycles (see utils/gcpause)
        documents = _read_documents(report, explicit, chunks, max_chunk_chars, overlap_chars,
                                    facts if with_facts else None, passages if with_facts else None)
        chat = _chat_examples(report)
    if generator.name == "offline":
        chunks = _offline_chunks(chunks, facts if with_facts else [])

    generated: list[Example] = []
    if chunks:
        plan_of = getattr(generator, "plan", None)
        if callable(plan_of) and confirm is not None and generator.name != "offline":
            plan = plan_of(chunks)
            if not confirm(plan):
                _say(on_message, "Generation not confirmed: using offline examples built from your text instead.")
                generator = OfflineGenerator(pairs_per_chunk)
                chunks = _offline_chunks(chunks, facts if with_facts else [])
        try:
            generated = generator.generate(chunks, progress=progress)
        except GeneratorError as exc:
            if qa != "auto" or generator.name == "offline":
                raise
            # 'auto' promises a result: say what went wrong and build offline examples instead.
            _say(on_message, f"{exc} Using offline examples built from your text instead.")
            generator = OfflineGenerator(pairs_per_chunk)
            chunks = _offline_chunks(chunks, facts if with_facts else [])
            generated = generator.generate(chunks, progress=progress)

    missing_message = report.vanished_sentence() or ""
    if missing_message:
        _say(on_message, missing_message)
    from_facts = fact_examples(facts, answer_first=answer_first)
    before = len(chat) + len(explicit) + len(generated) + len(from_facts) + len(passages)
    with paused_gc():
        examples, repeats = dedupe_with_repeats(chat + explicit + from_facts + generated + passages)
    duplicates = before - len(examples)
    mode = "offline" if generator.name == "offline" else "groq"
    made = sum(1 for e in examples if e.kind not in ("explicit", "fact", "passage"))
    chat_sources = {e.source for e in chat}
    counts = {
        "chat": sum(1 for e in examples if e.source in chat_sources),
        "explicit": sum(1 for e in examples if e.kind == "explicit" and e.source not in chat_sources),
        "generated": sum(1 for e in examples if e.kind == "generated"),
        "offline": sum(1 for e in examples if e.kind == "offline"),
        "fact": sum(1 for e in examples if e.kind == "fact"),
        "passage": sum(1 for e in examples if e.kind == "passage"),
        "facts": len(facts),
        "duplicates": duplicates,
        "chunks": len(chunks),
        "documents": documents,
    }
    if not examples and missing_message:
        raise DataError(f"{missing_message.rstrip('.')}; no example could be built from what is left.")
    if not examples:
        raise DataError(f"No training examples could be built from '{report.root}'; add more text "
                        f"(whole sentences, or Question:/Answer: pairs).")
    how = "offline" if mode == "offline" else f"by {generator.name}"
    message = (f"Built {len(examples)} examples: "
               + (f"{counts['chat']} chat examples from your .jsonl files, " if counts["chat"] else "")
               + f"{counts['explicit']} from Q&A in your text, "
               + (f"{counts['fact']} questions on {len(facts)} facts, {counts['passage']} passages of the text, "
                  if with_facts else "")
               + f"{made} generated {how} from {len(chunks)} chunks"
               + (f" ({duplicates} duplicates removed)." if duplicates else "."))
    _say(on_message, message)
    return ExampleSet(examples=examples, qa_mode=mode, message=message, counts=counts, facts=facts,
                      missing=list(report.vanished), missing_message=missing_message, repeats=repeats)
