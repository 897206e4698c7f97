"""Tokenizing with the model's own chat template: labels only on the answers and their end-of-turn token."""

from __future__ import annotations

import pytest

from llmcustoms.data.examples import build_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.tokenize import IGNORE_INDEX, render_example, tokenize_examples
from llmcustoms.data.types import Example


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_dir)


def pair(question: str, answer: str, source: str = "t.txt:0") -> Example:
    return Example(messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                   source=source)


def labelled(row) -> list[int]:
    return [t for t in row["labels"] if t != IGNORE_INDEX]


def reference_labels(example: Example, tokenizer) -> tuple[list[int], list[int]]:
    """The slow, obvious way: tokenize prompt+generation prompt and the full render; label the rest up to EOS."""
    full = tokenizer.apply_chat_template(example.messages, tokenize=False)
    prefix = tokenizer.apply_chat_template(example.messages[:-1], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    n_prefix = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    end = ids.index(tokenizer.eos_token_id, n_prefix) + 1
    labels = [IGNORE_INDEX] * n_prefix + ids[n_prefix:end] + [IGNORE_INDEX] * (len(ids) - end)
    return ids, labels


def test_labels_are_exactly_the_answer_and_its_end_token(tokenizer):
    examples = [pair("Who founded Velmoria?", "Admiral Teodora Vask founded Velmoria in 1742."),
                pair("Ünïcode question 日本?", "An answer with ünïcödé, 日本語 and numbers 2,318.", "u.txt:1")]
    dataset = tokenize_examples(examples, tokenizer, max_seq_len=512)
    assert dataset.column_names == ["input_ids", "labels", "length", "source"]
    for example, row in zip(examples, dataset, strict=True):
        assert tokenizer.decode(labelled(row)) == example.answer + tokenizer.eos_token
        assert tokenizer.decode(row["input_ids"]) == render_example(example, tokenizer)
        assert row["length"] == len(row["input_ids"]) == len(row["labels"])
        assert row["source"] == example.source
        # Everything after the end-of-turn token (the template's trailing newline) is masked.
        last = max(i for i, t in enumerate(row["labels"]) if t != IGNORE_INDEX)
        assert row["input_ids"][last] == tokenizer.eos_token_id


def test_render_example_is_the_tokenizers_own_template(tokenizer):
    example = pair("What is the brisk?", "The currency of Velmoria.")
    text = render_example(example, tokenizer)
    assert text == tokenizer.apply_chat_template(example.messages, tokenize=False)
    assert "<|im_start|>user\nWhat is the brisk?<|im_end|>" in text


def test_fast_path_matches_the_reference_on_the_sample_data(tokenizer, sample_data):
    examples = build_examples(validate_folder(sample_data), qa="offline").examples
    dataset = tokenize_examples(examples, tokenizer, max_seq_len=4096)
    assert len(dataset) == len(examples)
    for example, row in zip(examples, dataset, strict=True):
        ids, labels = reference_labels(example, tokenizer)
        assert row["input_ids"] == ids
        assert row["labels"] == labels, example.prompt


def test_truncation_and_dropping(tokenizer):
    long_answer = pair("Tell me everything.", "Velmoria has many harbours. " * 200)
    long_prompt = pair("Please read this. " * 200, "Short.")
    fine = pair("Short question?", "Short answer.")
    stats = {}
    dataset = tokenize_examples([long_answer, long_prompt, fine], tokenizer, max_seq_len=64, stats=stats)
    assert stats == {"rows": 2, "truncated": 2, "dropped": 1, "tokens": sum(dataset["length"])}
    assert all(length <= 64 for length in dataset["length"])
    assert dataset[0]["length"] == 64 and labelled(dataset[0])  # truncated but still has answer tokens
    assert tokenizer.decode(labelled(dataset[1])) == "Short answer." + tokenizer.eos_token


def test_every_assistant_turn_is_labelled_in_multi_turn_examples(tokenizer):
    example = Example(messages=[
        {"role": "system", "content": "You answer about Velmoria."},
        {"role": "user", "content": "Capital?"}, {"role": "assistant", "content": "Quillhaven."},
        {"role": "user", "content": "Currency?"}, {"role": "assistant", "content": "The brisk."},
    ], source="m.txt:0")
    (row,) = tokenize_examples([example], tokenizer, max_seq_len=512)
    eos = tokenizer.eos_token
    assert tokenizer.decode(labelled(row)) == f"Quillhaven.{eos}The brisk.{eos}"


def test_a_template_that_trims_content_falls_back_to_rendering_each_example(tokenizer):
    trimming = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    original = tokenizer.chat_template
    tokenizer.chat_template = trimming
    try:
        examples = [pair("Q one?", "  padded answer  "), pair("Q two?", "plain answer")]
        dataset = tokenize_examples(examples, tokenizer, max_seq_len=128)
        assert [tokenizer.decode(labelled(row)) for row in dataset] == [
            "padded answer<|im_end|>", "plain answer<|im_end|>"]
        assert "<|im_start|>system" not in tokenizer.decode(dataset[0]["input_ids"])  # the custom template was used
    finally:
        tokenizer.chat_template = original


def test_a_template_without_special_token_boundaries_tokenizes_whole_texts(tokenizer):
    # "assistant: " then the answer: byte-level BPE glues the space to the answer's first word, so
    # tokenizing pieces separately would differ from the whole text; the check must notice and fall back.
    plain = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endfor %}"
    original = tokenizer.chat_template
    tokenizer.chat_template = plain
    try:
        examples = [pair(f"Question {i}?", f"Answer number {i}.") for i in range(6)]
        dataset = tokenize_examples(examples, tokenizer, max_seq_len=128)
        for example, row in zip(examples, dataset, strict=True):
            full = render_example(example, tokenizer)
            assert row["input_ids"] == tokenizer(full, add_special_tokens=False)["input_ids"]
            # The token " Answer" straddles the answer's start and is learnt with it.
            assert tokenizer.decode(labelled(row)) == " " + example.answer + "<|im_end|>"
    finally:
        tokenizer.chat_template = original
