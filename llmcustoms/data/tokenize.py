"""Chat examples → token ids and labels, rendered with the model's own chat template.

Labels are -100 everywhere except the assistant's answer tokens and the end-of-turn token that
closes each answer (so the model learns to stop). Rows longer than ``max_seq_len`` are truncated;
rows left with no answer token are dropped.

Speed: ``apply_chat_template`` (a Jinja render) is slow, so for each message layout (e.g.
user → assistant) the template is rendered once with placeholders, and its literal pieces are
tokenized once; each example then only needs its contents tokenized, in batches, by the fast
(Rust) tokenizer. Both shortcuts are checked on the first examples of each layout against the
real thing (the template render; the whole text tokenized with character offsets, which place
the label boundaries exactly) and dropped for that layout on any difference.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from llmcustoms.data.types import Example
from llmcustoms.utils.gcpause import paused_gc

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
BATCH_SIZE = 1000
#: How many examples of each message layout are checked against the real template render.
VERIFY_PER_LAYOUT = 4
_SENTINEL = "\x00LLMC{}\x00"


def render_example(example: Example, tokenizer: Any) -> str:
    """The example's text exactly as the model sees it (the tokenizer's chat template, no generation prompt)."""
    return tokenizer.apply_chat_template(example.messages, tokenize=False)


def _special_strings(tokenizer: Any) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for name in ("eos_token", "pad_token"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, str):
            specials.add(value)
    return sorted((s for s in specials if s), key=len, reverse=True)


def _end_of_turn(rest: str, specials: list[str]) -> int:
    """Length of the end-of-turn marker that starts ``rest`` (a special token), else 0."""
    for token in specials:
        if rest.startswith(token):
            return len(token)
    return 0


Spans = list[tuple[int, int]]


def _slow_render(messages: list[dict[str, str]], tokenizer: Any, specials: list[str]) -> tuple[str, Spans]:
    """Render with the real template; find each assistant answer (plus its end-of-turn token)."""
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: Spans = []
    cursor = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True) if k else ""
        content = message["content"].strip()
        search_from = len(prefix) if full.startswith(prefix) else cursor
        start = full.find(content, max(search_from, cursor))
        if start < 0 or not content:
            continue
        end = start + len(content)
        end += _end_of_turn(full[end:], specials)
        spans.append((start, end))
        cursor = end
    return full, spans


class _Layout:
    """The template rendered once for one sequence of roles, with placeholders for the contents.

    ``pieces`` are the literal template texts around the contents; ``piece_ids`` the same
    tokenized once. When tokenizing the pieces and the contents separately gives exactly the ids
    of the whole text (checked on the first examples: true for byte-level BPE tokenizers, whose
    special tokens split the text anyway), only the contents need tokenizing for each example.
    """

    def __init__(self, roles: tuple[str, ...], tokenizer: Any, specials: list[str]) -> None:
        self.roles = roles
        self.ok = True  # the template keeps every content verbatim (string assembly is exact)
        self.piecewise: bool | None = None  # None: not yet checked
        self.checked = 0
        self.pieces: list[str] = []  # literal text around the contents: len(roles) + 1 pieces
        self.eot: list[int] = []  # characters of the end-of-turn marker after each content
        messages = [{"role": r, "content": _SENTINEL.format(i)} for i, r in enumerate(roles)]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        cursor = 0
        for i in range(len(roles)):
            marker = _SENTINEL.format(i)
            at = text.find(marker, cursor)
            if at < 0:
                self.ok = False  # the template drops or rewrites this message
                return
            self.pieces.append(text[cursor:at])
            cursor = at + len(marker)
        self.pieces.append(text[cursor:])
        self.eot = [_end_of_turn(self.pieces[i + 1], specials) for i in range(len(roles))]
        self.piece_ids = [_encode_ids([piece], tokenizer)[0] if piece else [] for piece in self.pieces]
        # How many tokens at the start of the next piece are the end-of-turn marker (learnt).
        self.eot_tokens = []
        for i in range(len(roles)):
            marker_ids = _encode_ids([self.pieces[i + 1][: self.eot[i]]], tokenizer)[0] if self.eot[i] else []
            if self.piece_ids[i + 1][: len(marker_ids)] != marker_ids:
                self.piecewise = False
            self.eot_tokens.append(len(marker_ids))

    def fill(self, messages: list[dict[str, str]]) -> tuple[str, Spans]:
        """The rendered text and the character spans to learn (answers plus end-of-turn markers)."""
        parts: list[str] = []
        spans: Spans = []
        position = 0
        for i, message in enumerate(messages):
            parts.append(self.pieces[i])
            position += len(self.pieces[i])
            content = message["content"]
            parts.append(content)
            if message["role"] == "assistant":
                spans.append((position, position + len(content) + self.eot[i]))
            position += len(content)
        parts.append(self.pieces[-1])
        return "".join(parts), spans

    def assemble(self, messages: list[dict[str, str]], content_ids: Sequence[list[int]]) -> tuple[list[int], list[int]]:
        """ids and labels from the pre-tokenized pieces and the contents' ids."""
        ids: list[int] = []
        labels: list[int] = []
        learn_next = 0  # end-of-turn tokens to learn at the start of the next piece
        for i, message in enumerate(messages):
            piece = self.piece_ids[i]
            ids += piece
            labels += piece[:learn_next] + [IGNORE_INDEX] * (len(piece) - learn_next)
            content = content_ids[i]
            ids += content
            if message["role"] == "assistant":
                labels += content
                learn_next = self.eot_tokens[i]
            else:
                labels += [IGNORE_INDEX] * len(content)
                learn_next = 0
        piece = self.piece_ids[-1]
        ids += piece
        labels += piece[:learn_next] + [IGNORE_INDEX] * (len(piece) - learn_next)
        return ids, labels


def _encode_ids(texts: list[str], tokenizer: Any) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    return list(tokenizer(texts, add_special_tokens=False)["input_ids"])


Offsets = list[tuple[int, int]]


def _encode(texts: list[str], tokenizer: Any) -> list[tuple[list[int], Offsets]]:
    """(ids, character offsets) per text, with the fast tokenizer's batch encoder when there is one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [(enc.ids, enc.offsets) for enc in backend.encode_batch(texts, add_special_tokens=False)]
    batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return list(zip(batch["input_ids"], batch["offset_mapping"], strict=True))


def _labels(ids: list[int], offsets: Offsets, spans: Spans) -> list[int]:
    """Labels = ids for tokens overlapping a span, -100 elsewhere.

    A token that straddles a span's start (" Paris" after "Assistant:") is learnt too, so the
    answer's first word is never lost.
    """
    labels = [IGNORE_INDEX] * len(ids)
    starts = [start for start, _ in offsets]
    ends = [end for _, end in offsets]
    for span_start, span_end in spans:
        first = bisect.bisect_right(ends, span_start)
        last = bisect.bisect_left(starts, span_end)
        labels[first:last] = ids[first:last]
    return labels


class _Tokenizer:
    """Renders and tokenizes examples, remembering per message layout which shortcuts are exact."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.specials = _special_strings(tokenizer)
        self.layouts: dict[tuple[str, ...], _Layout] = {}

    def _layout(self, messages: list[dict[str, str]]) -> _Layout | None:
        """The layout for these messages when string assembly is exact for them, else None."""
        roles = tuple(m["role"] for m in messages)
        layout = self.layouts.get(roles)
        if layout is None:
            layout = self.layouts[roles] = _Layout(roles, self.tokenizer, self.specials)
        # Contents the template might rewrite (surrounding spaces for '| trim', NULs) go the slow way.
        if not layout.ok or not all(m["content"] == m["content"].strip() and "\x00" not in m["content"]
                                    for m in messages):
            return None
        if layout.checked < VERIFY_PER_LAYOUT:
            layout.checked += 1
            text, spans = layout.fill(messages)
            if (text, spans) != _slow_render(messages, self.tokenizer, self.specials):
                logger.debug("chat template rewrites content for %s; rendering each example", layout.roles)
                layout.ok = False
                return None
            if layout.piecewise is not False:
                ((ids, offsets),) = _encode([text], self.tokenizer)
                pieces = layout.assemble(messages, _encode_ids([m["content"] for m in messages], self.tokenizer))
                if pieces != (list(ids), _labels(list(ids), offsets, spans)):
                    logger.debug("tokenizing %s piece by piece differs; tokenizing whole texts", layout.roles)
                    layout.piecewise = False
            if layout.checked == VERIFY_PER_LAYOUT and layout.piecewise is None:
                layout.piecewise = True
        return layout

    def batch(self, examples: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
        """(ids, labels) for each example, untruncated."""
        plans: list[tuple[str, Any, int]] = []
        contents: list[str] = []
        texts: list[str] = []
        spans_of: list[Spans] = []
        for example in examples:
            messages = example.messages
            layout = self._layout(messages)
            if layout is not None and layout.piecewise is not False:
                plans.append(("pieces", layout, len(contents)))
                contents.extend(m["content"] for m in messages)
                continue
            if layout is not None:
                text, spans = layout.fill(messages)
            else:
                text, spans = _slow_render(messages, self.tokenizer, self.specials)
            plans.append(("text", None, len(texts)))
            texts.append(text)
            spans_of.append(spans)
        content_ids = _encode_ids(contents, self.tokenizer) if contents else []
        encoded = _encode(texts, self.tokenizer) if texts else []
        results: list[tuple[list[int], list[int]]] = []
        for example, (kind, layout, at) in zip(examples, plans, strict=True):
            if kind == "pieces":
                results.append(layout.assemble(example.messages, content_ids[at: at + len(example.messages)]))
            else:
                ids, offsets = encoded[at]
                results.append((list(ids), _labels(list(ids), offsets, spans_of[at])))
        return results


def tokenize_examples(
    examples: Sequence[Example], tokenizer: Any, max_seq_len: int, stats: dict[str, int] | None = None
) -> Any:
    """A ``datasets.Dataset`` with columns ``input_ids, labels, length, source``.

    ``labels`` is -100 outside the assistant answers (the answer's end-of-turn token is learnt);
    rows are truncated to ``max_seq_len``; rows with no answer token left are dropped. When
    ``stats`` is given it receives 'rows', 'truncated', 'dropped' and 'tokens'.
    """
    with paused_gc():
        return _tokenize_examples(examples, tokenizer, max_seq_len, stats)


def _tokenize_examples(
    examples: Sequence[Example], tokenizer: Any, max_seq_len: int, stats: dict[str, int] | None
) -> Any:
    columns: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": [], "source": []}
    truncated = dropped = 0
    worker = _Tokenizer(tokenizer)
    for begin in range(0, len(examples), BATCH_SIZE):
        batch = examples[begin: begin + BATCH_SIZE]
        for example, (ids, labels) in zip(batch, worker.batch(batch), strict=True):
            if len(ids) > max_seq_len:
                truncated += 1
                ids, labels = ids[:max_seq_len], labels[:max_seq_len]
            if labels.count(IGNORE_INDEX) == len(labels):
                dropped += 1
                continue
            columns["input_ids"].append(ids)
            columns["labels"].append(labels)
            columns["length"].append(len(ids))
            columns["source"].append(example.source)
    if dropped:
        logger.warning("%d example(s) had no answer left within %d tokens and were dropped", dropped, max_seq_len)
    if stats is not None:
        stats.update(rows=len(columns["input_ids"]), truncated=truncated, dropped=dropped,
                     tokens=sum(columns["length"]))
    return _to_dataset(columns)


def _list_array(rows: list[list[int]], lengths: list[int]) -> Any:
    """A pyarrow list<int64> column built from one flat numpy array (much faster than from_dict)."""

    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


def _to_dataset(columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa
    from datasets import Dataset

    table = pa.table({
        "input_ids": _list_array(columns["input_ids"], columns["length"]),
        "labels": _list_array(columns["labels"], columns["length"]),
        "length": pa.array(columns["length"], type=pa.int64()),
        "source": pa.array(columns["source"], type=pa.string()),
    })
    return Dataset(table)
