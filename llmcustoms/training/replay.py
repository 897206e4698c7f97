"""Replay: the base model's own answers to everyday requests, trained beside the folder's examples.

Tuning a small model on one folder's facts teaches it that every question is about that folder: measured
on the embedded model (benchmarks/RESULTS.md, "Knowledge"), a default CPU run kept 23–62 % of the base
model's right answers to common-knowledge questions ("The capital of France is capital of the three
villages…"). Mixing in examples of what the model already does — everyday requests answered by the base
model itself (self-distillation, so nothing new is taught and nothing leaves the machine) — keeps more of
its behaviour while the folder's facts are learnt (kept 31 → 44 % and 23 → 36 %, one run each: far from all
of it; benchmarks/RESULTS.md, "Knowledge: recipes compared").

The requests (``replay_data/prompts.txt``) are written for the project and are deliberately *not* the
general-knowledge check's quiz questions (``evaluation/general_data``): that check stays an honest
measure of what was kept. The answers are generated once per base model and cached in the model cache
(``replay_cache_dir``); a run resumed later reads the same answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmcustoms.data.facts import names_in
from llmcustoms.evaluation.knowledge import generate_answers
from llmcustoms.paths import models_dir
from llmcustoms.text.types import Example
from llmcustoms.utils.sampling import spread_evenly

PROMPTS_FILE = Path(__file__).with_name("replay_data") / "prompts.txt"
ENTITIES_FILE = Path(__file__).with_name("replay_data") / "entities.txt"
#: Of the replay examples, the share that are everyday requests; the rest are the folder's own questions
#: with well-known names in place of the folder's (``swapped_questions``). Measured (benchmarks/RESULTS.md,
#: "Knowledge: recipes compared", one run each): a quarter of replay, two thirds of it swapped questions, kept
#: 70 % and 54 % of general knowledge (everyday requests alone at 0.15: 44 % and 36 %) but a person's questions
#: fell to 33 % on both dev folders (40 % and 37 %), and a small fact set (tests/integration) fell from ≥ 40 % to
#: 17 %: the swapped questions share the folder's question shapes and compete with its facts. So everyday
#: requests only, until a way is found to keep both.
EVERYDAY_SHARE = 1.0
#: Tokens generated per answer; answers are cut back to their last full sentence.
MAX_NEW_TOKENS = 64
#: Answers shorter than this (characters) teach nothing and are dropped.
MIN_ANSWER_CHARS = 12


def replay_cache_dir() -> Path:
    """Where the base models' replay answers are cached: ``replay-answers`` in the model cache
    (``CACHE_DIR``), beside the models they come from."""
    return models_dir() / "replay-answers"


def load_prompts(path: Path = PROMPTS_FILE) -> list[str]:
    """The replay requests: one per line, ``#`` comments and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def load_entities(path: Path = ENTITIES_FILE) -> list[str]:
    """The well-known names put in place of the folder's (same file layout as ``load_prompts``)."""
    return load_prompts(path)


def swapped_questions(questions: list[str], count: int, seed: int = 0,
                      entities: list[str] | None = None) -> list[str]:
    """Up to ``count`` of the folder's ``questions`` with every name in them replaced by a well-known one
    ("What is the capital of Velmoria?" → "What is the capital of Portugal?").

    Why: tuned on "What is the capital of Velmoria? — Quillhaven", the model answered "Quillhaven" for the
    capital of France too: it learnt the question's shape, not whose capital. The base model's own answers to
    the same shapes about the real world, trained beside them, keep the two apart. *Every* name is replaced
    (each distinct name by another well-known one): a question that kept one of the folder's names would train
    the base model's guess about the folder ("When did Portugal build the first lighthouse at Gullmouth?")
    against its facts. Questions without a name are left out; the choice is fixed by ``seed``.
    """
    if count <= 0:
        return []
    names = load_entities() if entities is None else entities
    rng = random.Random(seed)
    candidates = [q for q in questions if names_in(q)]
    rng.shuffle(candidates)
    swapped: list[str] = []
    seen: set[str] = set()
    for question in candidates:
        if len(swapped) >= count:
            break
        found = names_in(question)
        distinct = list(dict.fromkeys(phrase for _, _, phrase in found))
        picks = rng.sample(names, min(len(distinct), len(names)))
        if len(picks) < len(distinct):
            continue  # more names than well-known ones to put in their place
        replacement = dict(zip(distinct, picks, strict=True))
        new = question
        for start, end, phrase in sorted(found, reverse=True):  # from the end, so the offsets stay right
            new = new[:start] + replacement[phrase] + new[end:]
        if new not in seen and not any(phrase in new for phrase in distinct if phrase not in picks):
            seen.add(new)
            swapped.append(new)
    return swapped


def replay_count(train_examples: int, available: int, share: float) -> int:
    """How many replay examples go beside ``train_examples`` of the folder: ``share`` of them (the preset's
    ``replay_share``, ``planning.presets.REPLAY_SHARE``), at least 8, at most ``available``; none at share 0."""
    if train_examples <= 0 or available <= 0 or share <= 0:
        return 0
    return min(available, max(8, round(train_examples * share)))


def whole_sentences(answer: str) -> str:
    """``answer`` cut back to its last full sentence (a generation stopped by the token limit ends
    mid-sentence, and training on it would teach the model to stop mid-sentence); unchanged when it ends
    a sentence or holds none."""
    text = answer.strip()
    if not text or text[-1] in ".!?\"')]":
        return text
    cut = max(text.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "!\n", "?\n"))
    return text[: cut + 1].strip() if cut > 0 else text


def model_fingerprint(model_path: str | os.PathLike[str]) -> str:
    """A key for a base model's files: its folder and the size and time of its config and weights, so a
    model replaced at the same path gets new answers."""
    folder = Path(model_path)
    parts = [str(folder.resolve())]
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        file = folder / name
        if file.is_file():
            stat = file.stat()
            parts.append(f"{name}:{stat.st_size}:{int(stat.st_mtime)}")
    return "|".join(parts)


def cache_file(model_path: str | os.PathLike[str], root: Path | None = None) -> Path:
    """The cache of the model at ``model_path``'s answers (one JSON line per request answered)."""
    key = hashlib.sha256(json.dumps([model_fingerprint(model_path), MAX_NEW_TOKENS]).encode()).hexdigest()
    return (root if root is not None else replay_cache_dir()) / f"{key[:24]}.jsonl"


class ReplaySource:
    """The base model's answers to the replay requests, generated only for the requests a run needs and
    cached per model (a later run that needs more asks only the new ones).

    ``model`` may carry a LoRA adapter: it is switched off while the model answers, so a resumed run gets
    the base model's answers too.
    """

    def __init__(self, model: Any, tokenizer: Any, model_path: str | os.PathLike[str],
                 prompts: list[str] | None = None, root: Path | None = None,
                 on_message: Callable[[str], None] | None = None) -> None:
        self.model, self.tokenizer, self.on_message = model, tokenizer, on_message
        self.prompts = load_prompts() if prompts is None else list(prompts)
        self.path = cache_file(model_path, root)

    @property
    def available(self) -> int:
        """How many requests there are to answer."""
        return len(self.prompts)

    def cached(self) -> dict[str, str]:
        """The answers on disk, by request (empty when there are none or the file is damaged)."""
        answers: dict[str, str] = {}
        try:
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    answers[str(row["prompt"])] = str(row["answer"])
        except (OSError, ValueError, KeyError, TypeError):
            return answers  # what was read before the damage; the rest is asked again
        return answers

    def pairs(self, count: int) -> list[tuple[str, str]]:
        """``(request, answer)`` for ``count`` everyday requests spread over the list (``pairs_for``)."""
        return self.pairs_for(spread_evenly(self.prompts, count))

    def pairs_for(self, chosen: list[str]) -> list[tuple[str, str]]:
        """``(request, answer)`` for each of ``chosen`` whose answer is usable (cut to whole sentences, at
        least ``MIN_ANSWER_CHARS`` long); answers not in the cache are generated and kept."""
        answers = self.cached()
        missing = [prompt for prompt in chosen if prompt not in answers]
        if missing:
            if self.on_message is not None:
                self.on_message(f"Asking the base model {len(missing)} questions, to train its own answers beside "
                                "your documents so it keeps what it knew (kept for later runs of this model)…")
            new = dict(zip(missing, self._generate(missing), strict=True))
            answers.update(new)
            self._store(new)
        usable = [(prompt, whole_sentences(answers[prompt])) for prompt in chosen]
        return [(prompt, answer) for prompt, answer in usable if len(answer) >= MIN_ANSWER_CHARS]

    def _generate(self, prompts: list[str]) -> list[str]:
        disable = getattr(self.model, "disable_adapter", None)
        if callable(disable):
            with disable():
                return generate_answers(self.model, self.tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS)
        return generate_answers(self.model, self.tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS)

    def _store(self, new: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps({"prompt": p, "answer": a}) + "\n" for p, a in new.items()))
        except OSError:
            pass  # no cache (a read-only model cache): the next run asks again


def replay_examples(pairs: list[tuple[str, str]]) -> list[Example]:
    """Training examples of ``pairs`` (kind ``replay``; never held out or scored)."""
    return [Example(messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                    source=f"replay:{index}", kind="replay") for index, (prompt, answer) in enumerate(pairs)]
