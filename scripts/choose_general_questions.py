"""Choose the shipped general questions: keep the candidates the embedded base model answers right.

    .venv/bin/python scripts/choose_general_questions.py [--candidates FILE] [--out FILE]

The candidates (``llmcustoms/evaluation/general_data/general_candidates.jsonl``) are plain common knowledge
written for the project. Each is asked of SmolLM2-135M-Instruct (the embedded model, fp32 on the CPU as
``llmcustoms eval`` loads it) exactly as ``evaluation.general.score_general`` asks: the question alone in
the chat template, greedy, 32 new tokens, scored by ``scoring.is_correct`` against any of its keys. Those
it gets right are written, in the candidates' order, to ``general_questions.jsonl``. So "kept" measures what
the tuned model lost of what its base knew, not questions the base could never answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmcustoms.evaluation.general import DATA_DIR, QUESTIONS_FILE, read_questions  # noqa: E402
from llmcustoms.evaluation.knowledge import generate_answers  # noqa: E402


def main() -> None:
    """Ask every candidate, keep the right ones, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=Path, default=DATA_DIR / "general_candidates.jsonl")
    parser.add_argument("--out", type=Path, default=QUESTIONS_FILE)
    parser.add_argument("--show-wrong", action="store_true", help="print the questions answered wrong")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from llmcustoms.models.loading import load_tokenizer
    from llmcustoms.models.manager import ModelManager

    folder = ModelManager().ensure_embedded()
    tokenizer = load_tokenizer(str(folder))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    candidates = read_questions(args.candidates)
    started = time.time()
    answers = generate_answers(model, tokenizer, [c.question for c in candidates])
    seconds = time.time() - started
    kept = []
    for candidate, answer in zip(candidates, answers, strict=True):
        if candidate.is_right(answer):
            kept.append({"q": candidate.question, "a": list(candidate.answers)})
        elif args.show_wrong:
            print(f"WRONG  {candidate.question}  keys={list(candidate.answers)}  said={answer!r}")
    args.out.write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in kept), encoding="utf-8")
    print(f"{len(candidates)} candidates, {len(kept)} answered right by the base model "
          f"({100 * len(kept) / max(1, len(candidates)):.0f} %), {len(candidates) - len(kept)} dropped; "
          f"asked in {seconds:.1f} s; written to {args.out}")


if __name__ == "__main__":
    main()
