"""The tokenizer as GGUF metadata: vocabulary, merges, token types, special ids, flags, chat template.

Only byte-level BPE vocabularies (``tokenizer.ggml.model = "gpt2"``: SmolLM2, Llama 3, Qwen2 …) are
written; their ``tokenizer.json`` is read from the fast tokenizer itself, so whatever the run trained
with is what goes into the file. Pitfalls this module exists for (measured, see issue 8):
- Added tokens that sit inside the base vocabulary must be typed from ``added_tokens``:
  special → CONTROL, otherwise USER_DEFINED, or they are split into pieces on the way back.
- The pre-tokenizer name decides the split regex (in llama.cpp and in transformers' GGUF reader);
  a wrong name swaps it silently, so it is derived from the tokenizer's own pre-tokenizer and an
  unknown one is refused.
- ``add_bos``/``add_eos`` are written explicitly, from what the tokenizer really does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from llmcustoms.errors import InputError

# gguf.TokenType values (kept literal so importing this module needs no gguf)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

#: llama.cpp's name for the GPT-2 split regex (transformers' reader falls back to the same regex).
GPT2_PRE = "gpt-2"
#: Preferred llama.cpp names when several share one regex in transformers' table.
PREFERRED_PRE_NAMES = ("llama-bpe", "qwen2", "tekken", "gpt-4o", "qwen35")


@dataclass
class GGUFVocab:
    """Everything under ``tokenizer.*`` in the file."""

    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool = False
    add_eos: bool = False
    chat_template: str | None = None
    source_fingerprint: str = ""

    def fingerprint(self, tokenizer_json: str = "") -> str:
        """A hash of everything written (and of the source tokenizer's JSON, when given)."""
        digest = hashlib.sha256(tokenizer_json.encode("utf-8"))
        payload = [self.model, self.pre, self.tokens, self.token_types, self.merges, sorted(self.special_ids.items()),
                   self.add_bos, self.add_eos, self.chat_template]
        digest.update(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()

    def add_to(self, writer) -> None:
        """Write the metadata with a ``gguf.GGUFWriter``."""
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.token_types)
        if self.merges:
            writer.add_token_merges(self.merges)
        for kind, token_id in self.special_ids.items():
            getattr(writer, f"add_{kind}_token_id")(token_id)
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(self.add_eos)
        writer.add_add_space_prefix(False)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def _flatten(node: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A pre-tokenizer (or normalizer) as a flat list of its steps."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        steps: list[dict[str, Any]] = []
        for child in node.get("pretokenizers") or node.get("normalizers") or []:
            steps.extend(_flatten(child))
        return steps
    return [node]


def _split_regex(step: dict[str, Any]) -> str | None:
    pattern = step.get("pattern") or {}
    return pattern.get("Regex") if isinstance(pattern, dict) else None


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer name matching this byte-level tokenizer's split rules.

    Raises InputError for a split the GGUF readers would not reproduce.
    """
    steps = _flatten(tokenizer_json.get("pre_tokenizer"))
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return GPT2_PRE
    if (kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits")
            and steps[1].get("use_regex", True)):
        return "smollm"  # llama.cpp: single digits, then the GPT-2 regex
    if len(steps) >= 2 and kinds[0] == "Split" and kinds[-1] == "ByteLevel" and not steps[-1].get("use_regex", True):
        regex = _split_regex(steps[0])
        if len(steps) == 2 and regex:
            from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

            names = [name for name, known in GGUF_PRE_TOKENIZER_SPLITS.items() if known == regex]
            for preferred in PREFERRED_PRE_NAMES:
                if preferred in names:
                    return preferred
            if names:
                return names[0]
    raise InputError(
        "GGUF export cannot name this tokenizer's pre-tokenizer for llama.cpp "
        f"({' + '.join(str(k) for k in kinds) or 'none'}); export it as 'merged' instead."
    )


def _merge_strings(merges: list[Any]) -> list[str]:
    """Merges as llama.cpp spells them: ``"a b"``, a space inside a part written as U+0120+256."""
    out = []
    for merge in merges:
        if isinstance(merge, str):
            out.append(merge)
        else:
            left, right = merge
            out.append(" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in (left, right)))
    return out


def _adds_special(tokenizer) -> tuple[bool, bool]:
    """(adds BOS, adds EOS): what encoding really does with ``add_special_tokens=True``."""
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = bos is not None and full[:1] == [bos] and full[1 : 1 + len(plain)] == plain
    rest = full[(1 if add_bos else 0) + len(plain):]
    add_eos = eos is not None and rest == [eos]
    return add_bos, add_eos


def build_vocab(tokenizer, n_vocab: int) -> GGUFVocab:
    """The GGUF vocabulary of a fast byte-level BPE tokenizer, padded to the model's ``n_vocab`` rows."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise InputError("GGUF export needs a fast tokenizer (tokenizer.json); this model has none.")
    data = json.loads(backend.to_str())
    model = data.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        kind = "sentencepiece-style BPE" if model.get("byte_fallback") else str(model.get("type"))
        raise InputError(
            f"GGUF export writes byte-level BPE vocabularies only, and this tokenizer is {kind}; "
            "export it as 'merged' instead."
        )
    pre = pre_tokenizer_name(data)

    by_id: dict[int, str] = {int(i): tok for tok, i in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in data.get("added_tokens", []):
        token_id = int(added["id"])
        by_id[token_id] = added["content"]
        types[token_id] = CONTROL if added.get("special") else USER_DEFINED
    size = max(by_id) + 1
    if size > n_vocab:
        raise InputError(f"The tokenizer has {size} tokens but the model only {n_vocab} embedding rows.")
    tokens, token_types = [], []
    for token_id in range(n_vocab):
        if token_id in by_id:
            tokens.append(by_id[token_id])
            token_types.append(types.get(token_id, NORMAL))
        else:
            tokens.append(f"[PAD{token_id}]")
            token_types.append(UNUSED)

    special_ids: dict[str, int] = {}
    for kind in ("bos", "eos", "unk", "pad"):
        special_id = getattr(tokenizer, f"{kind}_token_id", None)
        if isinstance(special_id, int) and 0 <= special_id < n_vocab:
            special_ids[kind] = special_id
    add_bos, add_eos = _adds_special(tokenizer)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    vocab = GGUFVocab(model="gpt2", pre=pre, tokens=tokens, token_types=token_types,
                      merges=_merge_strings(model.get("merges") or []), special_ids=special_ids,
                      add_bos=add_bos, add_eos=add_eos, chat_template=template or None)
    vocab.source_fingerprint = vocab.fingerprint(backend.to_str())
    return vocab
