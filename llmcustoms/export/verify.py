"""Checking an export against the model it came from: logits on a fixed prompt, token ids on fixed text.

The numbers: the relative logit error ``||a - b|| / ||b||`` over every position and vocabulary
entry, and the share of positions where both pick the same next token (argmax agreement).
A mismatch beyond the limits is an :class:`~llmcustoms.errors.LLMCustomsError`, never a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcustoms.errors import LLMCustomsError

#: The conversation whose logits are compared (rendered with the model's chat template).
VERIFY_MESSAGES = [
    {"role": "user", "content": "Write one short sentence about the sea, then count from 1 to 5."},
    {"role": "assistant", "content": "The sea is wide, deep and restless. 1, 2, 3, 4, 5 — done!"},
    {"role": "user", "content": "Now name three colours of the evening sky."},
]

#: Text whose token ids must survive the trip through the GGUF metadata unchanged.
TOKENIZER_PROBE = (
    "Hello world! Ünïcödé: café, naïve, 日本語, emoji 🙂🚀, Ελληνικά, русский. Numbers 1234567 and 3.14159.\n"
    "  Indented\tline with tabs  and  double  spaces.\n"
    "Code: def f(x): return x ** 2  # comment\n"
)

#: Limits per format: (largest relative logit error, smallest argmax agreement).
LIMITS: dict[str, tuple[float, float]] = {
    "merged-float32": (1e-3, 1.0),
    "merged-bfloat16": (5e-2, 0.9),
    "merged-float16": (2e-2, 0.9),
    "gguf-f16": (1e-2, 0.9),
    "gguf-q8_0": (5e-2, 0.9),
    # 5- and 4-bit blocks: llama.cpp's own trade of size for accuracy; the limits catch a broken file (wrong
    # layout, scales or types give errors near 1 and chance agreement), not the rounding these types make.
    # Measured on SmolLM2-135M (benchmarks/RESULTS.md): q4_1 5 % / 92 %, q4_0 38 % / 70 % (+17 % perplexity:
    # symmetric 4-bit blocks suit a 135M model poorly; q4_1 or q8_0 are the better choice there).
    "gguf-q4_1": (0.3, 0.7),
    "gguf-q4_0": (0.5, 0.6),
    "gguf-q6_k": (0.1, 0.85),
    "gguf-q5_k_m": (0.15, 0.8),
    "gguf-q4_k_m": (0.3, 0.7),
}


@dataclass
class Comparison:
    """How close two models' logits are on the fixed prompt."""

    rel_error: float
    argmax_agreement: float
    positions: int
    max_abs_error: float

    def describe(self) -> str:
        """One line for people: the numbers that decide pass or fail."""
        return (f"relative logit error {self.rel_error:.2e}, argmax agreement {self.argmax_agreement:.0%} "
                f"over {self.positions} positions")

    def as_dict(self) -> dict[str, Any]:
        """The numbers as a plain dict."""
        return {"rel_error": self.rel_error, "argmax_agreement": self.argmax_agreement,
                "positions": self.positions, "max_abs_error": self.max_abs_error}


def verification_ids(tokenizer) -> list[int]:
    """The fixed prompt's token ids (chat-template rendered when the tokenizer has a template)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(VERIFY_MESSAGES, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = "\n".join(m["content"] for m in VERIFY_MESSAGES)
    return list(tokenizer(text)["input_ids"])


def logits_for(model, ids: list[int]):
    """Float32 logits of ``model`` on ``ids`` (one sequence, no cache), on the CPU."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    return out.logits[0].float().cpu()


def compare_logits(reference, candidate) -> Comparison:
    """Relative error and argmax agreement of ``candidate`` against ``reference`` (both [positions, vocab])."""
    if reference.shape != candidate.shape:
        raise LLMCustomsError(
            f"The exported model's output has shape {tuple(candidate.shape)}, expected {tuple(reference.shape)}."
        )
    diff = (candidate - reference).double()
    rel = float(diff.norm() / reference.double().norm().clamp_min(1e-30))
    agree = float((candidate.argmax(-1) == reference.argmax(-1)).float().mean())
    return Comparison(rel_error=rel, argmax_agreement=agree, positions=int(reference.shape[0]),
                      max_abs_error=float(diff.abs().max()) if diff.numel() else 0.0)


def enforce(comparison: Comparison, kind: str, what: str) -> None:
    """LLMCustomsError when ``comparison`` is outside the limits for ``kind`` (a key of LIMITS)."""
    if kind not in LIMITS:
        raise KeyError(kind)
    max_rel, min_agree = LIMITS[kind]
    if not comparison.rel_error < max_rel or comparison.argmax_agreement < min_agree:
        raise LLMCustomsError(
            f"Verification failed: {what} does not reproduce the trained model ({comparison.describe()}; "
            f"allowed: error < {max_rel:g}, agreement >= {min_agree:.0%}); nothing was written."
        )


def load_gguf_model(gguf_file: Path):
    """The GGUF read back by transformers (de-quantized to float32).

    transformers parses the file with ``gguf`` itself, unaided: an independent reader of what we wrote.
    (Memoizing ``gguf.GGUFReader`` for it halved this read-back, ~23 s → ~11 s for a 135M model on 2
    cores, but only by replacing the library's functions process-wide, which a UI thread could see.)
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    model.eval()
    return model


def load_gguf_tokenizer(gguf_file: Path):
    """The tokenizer transformers rebuilds from the GGUF's metadata."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)


def tokenizer_probe_texts(tokenizer) -> list[str]:
    """Texts to compare token ids on: unicode, digits, whitespace, special tokens and a rendered chat."""
    added = [str(t) for _, t in sorted(getattr(tokenizer, "added_tokens_decoder", {}).items())]
    specials = list(dict.fromkeys([*added[:64], *(t for t in getattr(tokenizer, "all_special_tokens", []) if t)]))
    texts = [TOKENIZER_PROBE, "".join(f"{s} text {i} " for i, s in enumerate(specials)) + "end"]
    if getattr(tokenizer, "chat_template", None):
        texts.append(tokenizer.apply_chat_template(VERIFY_MESSAGES, tokenize=False, add_generation_prompt=True))
    return texts


def check_tokenizer(original, rebuilt) -> str:
    """LLMCustomsError when ``rebuilt`` (from the GGUF) gives other token ids than ``original``."""
    texts = tokenizer_probe_texts(original)
    for text in texts:
        for special in (False, True):
            want = list(original(text, add_special_tokens=special)["input_ids"])
            got = list(rebuilt(text, add_special_tokens=special)["input_ids"])
            if want != got:
                pairs = enumerate(zip(want, got, strict=False))
                first = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
                raise LLMCustomsError(
                    "Verification failed: the GGUF's tokenizer splits text differently from the trained model's "
                    f"(first difference at token {first} of {text[:40]!r}…); nothing was written."
                )
    return f"tokenizer ids identical on {len(texts)} probe texts"


#: Tokenizer checks already passed in this process, by fingerprint (see :func:`verify_gguf_tokenizer`).
_VERIFIED_TOKENIZERS: dict[str, str] = {}


def _as_llama_cpp_splits(rebuilt, pre: str):
    """Give ``rebuilt`` llama.cpp's split for pre-tokenizer names transformers' GGUF reader does not map.

    llama.cpp's "smollm" splits single digits before the GPT-2 regex; transformers falls back to the
    GPT-2 regex alone, which would make a correct file look wrong.
    """
    if pre == "smollm":
        from tokenizers import pre_tokenizers

        rebuilt.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    return rebuilt


def verify_gguf_tokenizer(original, gguf_file: Path, fingerprint: str, pre: str = "") -> str:
    """Rebuild the tokenizer from ``gguf_file`` and compare ids with ``original`` (see :func:`check_tokenizer`).

    ``fingerprint`` identifies the original tokenizer and the exact metadata written for it. The
    metadata does not depend on the quantization, so a second export of the same vocabulary in the
    same process (f16, then q8_0) reuses the first check instead of rebuilding ~50k tokens again.
    """
    if fingerprint in _VERIFIED_TOKENIZERS:
        return _VERIFIED_TOKENIZERS[fingerprint] + " (same metadata as an export checked earlier)"
    note = check_tokenizer(original, _as_llama_cpp_splits(load_gguf_tokenizer(gguf_file), pre))
    _VERIFIED_TOKENIZERS[fingerprint] = note
    return note
