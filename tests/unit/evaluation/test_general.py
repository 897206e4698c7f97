"""General ability before and after tuning (tiny random Llama with SmolLM2's tokenizer): perplexity, kept, the data."""

from __future__ import annotations

import json
import math

import pytest

from llmcustoms.evaluation.general import (
    QUESTIONS_FILE,
    SAMPLE,
    TEXT_FILE,
    GeneralQuestion,
    GeneralReport,
    general_line,
    general_perplexity,
    general_sample,
    load_general_questions,
    load_general_text,
    score_general,
)

QUESTIONS = [GeneralQuestion("What is the capital of France?", ("Paris",)),
             GeneralQuestion("How many legs does a spider have?", ("8", "eight")),
             GeneralQuestion("Who wrote Hamlet?", ("William Shakespeare", "Shakespeare"))]
TEXT = ("Plants grow from seeds. A seed holds a tiny young plant and a store of food to keep it alive until it can "
        "make its own. When a seed has water, air and warmth, it swells and splits its coat. ") * 12


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny random Llama (context 1024) in eval mode and its tokenizer (SmolLM2's)."""
    from transformers import AutoModelForCausalLM

    from llmcustoms.models.loading import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), load_tokenizer(str(tiny_model_dir))


def _mean_token_loss(model, ids) -> float:
    """The mean next-token negative log-likelihood of ``ids`` in one pass, by log-softmax (not the module's code)."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return float(-logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean())


def test_perplexity_is_exp_of_the_mean_token_loss(tiny):
    model, tokenizer = tiny
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"][:200]
    assert len(ids) == 200
    got = general_perplexity(model, tokenizer, TEXT, max_tokens=200)
    assert got == pytest.approx(math.exp(_mean_token_loss(model, ids)), rel=1e-4)
    assert got > 1.0


def test_perplexity_windows_never_exceed_the_model_context(tiny):
    """With a context of 64, 200 tokens are scored as windows 64+64+64+8, each predicting all but its first."""
    model, tokenizer = tiny
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"][:200]
    old = model.config.max_position_embeddings
    model.config.max_position_embeddings = 64
    try:
        got = general_perplexity(model, tokenizer, TEXT, max_tokens=200)
    finally:
        model.config.max_position_embeddings = old
    windows = [ids[i: i + 64] for i in range(0, 200, 64)]
    total = sum(_mean_token_loss(model, w) * (len(w) - 1) for w in windows)
    assert got == pytest.approx(math.exp(total / sum(len(w) - 1 for w in windows)), rel=1e-4)
    assert got != pytest.approx(general_perplexity(model, tokenizer, TEXT, max_tokens=200), rel=1e-6)


def _says_paris(tiny_model_dir, tokenizer):
    """The tiny random Llama made to answer "Paris" to anything (a bias on that token), as a PEFT model with LoRA.

    A random model only repeats a blank token, which no key matches; this one gets a "Paris" key right.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]] = 100.0
    model.lm_head = head
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))


def test_an_adapter_that_changes_nothing_keeps_everything_and_the_base_is_asked_with_it_off(tiny, tiny_model_dir):
    tokenizer = tiny[1]
    model = _says_paris(tiny_model_dir, tokenizer)
    keyed = [GeneralQuestion(q.question, ("Paris",)) for q in QUESTIONS]
    seen = []
    report = score_general(model, tokenizer, questions=keyed, text=TEXT,
                           progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert (report.questions, report.base_right, report.kept) == (3, 3, 3)
    assert report.general_kept == 1.0
    assert report.general_perplexity_change == pytest.approx(0.0, abs=1e-6)
    with model.disable_adapter():
        assert report.base_perplexity == pytest.approx(general_perplexity(model, tokenizer, TEXT, 512), rel=1e-5)
    assert [r["tuned_correct"] for r in report.rows] == [True] * 3 and report.rows[0]["tuned"].startswith("Paris")
    assert ("general_base", 3, 3) in seen and ("general_tuned", 3, 3) in seen
    assert general_line(report) == ("Kept 100 % of general knowledge (3 of 3 answers the base model got right); "
                                    "general perplexity +0 %")

    # An adapter that does change the model: the base (adapter off) is unchanged, the tuned side is not.
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    changed = score_general(model, tokenizer, questions=keyed, text=TEXT, base_answers=[r["base"] for r in report.rows])
    assert changed.base_perplexity == pytest.approx(report.base_perplexity, rel=1e-5)
    assert changed.tuned_perplexity != pytest.approx(report.tuned_perplexity, rel=1e-3)
    assert changed.general_perplexity_change == pytest.approx(changed.tuned_perplexity / changed.base_perplexity - 1)


def test_a_report_round_trips_through_json():
    report = GeneralReport(questions=32, base_right=30, kept=29, general_kept=29 / 30, base_perplexity=14.2,
                           tuned_perplexity=14.9, general_perplexity_change=14.9 / 14.2 - 1, seconds=61.3,
                           rows=[{"question": "Who wrote Hamlet?", "answers": ["Shakespeare"], "base": "Shakespeare.",
                                  "base_correct": True, "tuned": "Marlowe.", "tuned_correct": False}])
    again = GeneralReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == GeneralReport(**{**report.__dict__, "seconds": 61.3})
    assert general_line(again) == ("Kept 97 % of general knowledge (29 of 30 answers the base model got right); "
                                   "general perplexity +5 %")
    none = GeneralReport(questions=3, base_right=0, kept=0, general_kept=None, base_perplexity=2.0,
                         tuned_perplexity=2.0, general_perplexity_change=0.0)
    assert GeneralReport.from_dict(none.to_dict()).general_kept is None
    assert "none of 3 right" in general_line(none)


def test_the_shipped_questions_and_text():
    lines = [line for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) >= 100
    for line in lines:
        item = json.loads(line)
        assert item["q"].strip().endswith("?")
        assert item["a"] and all(isinstance(a, str) and a.strip() for a in item["a"])
    questions = load_general_questions()
    assert len(questions) == len(lines) == len({q.question for q in questions})
    candidates = (QUESTIONS_FILE.parent / "general_candidates.jsonl").read_text(encoding="utf-8")
    assert all(json.dumps(q.question)[1:-1] in candidates for q in questions)  # chosen from the candidates
    assert 1200 <= len(load_general_text().split()) <= 1800 and TEXT_FILE.is_file()
    sample = general_sample(questions)
    assert len(sample) == SAMPLE and len(set(sample)) == SAMPLE
    assert sample[0] == questions[0] and sample[-1] in questions[-len(questions) // SAMPLE - 1:]  # spread to the end
    assert general_sample(questions, None) == questions
