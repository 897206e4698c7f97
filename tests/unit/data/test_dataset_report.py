"""The dataset report (issue 23, point 6): token lengths against the limit, exact and near duplicates, and
leakage of held-out questions into training, each naming its file — on real small folders, through
``llmcustoms validate --json`` and ``prepare`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from llmcustoms.cli import main
from llmcustoms.data.dataset_report import (
    build_dataset_report,
    find_leaks,
    source_file,
    tokenizer_counter,
)
from llmcustoms.data.examples import build_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.tokenize import render_example
from llmcustoms.data.types import Example
from llmcustoms.evaluation.split import split_facts
from tests.helpers.documents import make_pdf

EXAMPLES_DATA = Path(__file__).resolve().parents[3] / "examples" / "data"


def chat(question: str, answer: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def pair(question: str, answer: str, source: str) -> Example:
    return Example(messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                   source=source, kind="explicit")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """examples/data (real prose with facts) plus a chat file with a repeat, a near repeat and a long answer."""
    root = tmp_path / "data"
    shutil.copytree(EXAMPLES_DATA, root)
    long_answer = " ".join(f"The harbour bell number {n} was cast in bronze and rung at dawn." for n in range(300))
    (root / "mine.jsonl").write_text("\n".join([
        chat("Who keeps the harbour bell?", "The bell warden keeps it."),
        chat("Who keeps the harbour bell?", "The bell warden keeps it."),  # an exact repeat
        chat("What is the name of the ferry?", "The Grey Gull."),
        chat("what is the ferry's name", "The grey gull!"),  # not the same words: no near repeat
        chat("The name of the ferry is what?", "The Grey Gull."),  # the same words, another order
        chat("List every harbour bell.", long_answer),  # far over 512 tokens
    ]) + "\n", encoding="utf-8")
    return root


def validate_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["validate", str(folder), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_validate_json_reports_lengths_duplicates_with_their_files(folder, capsys):
    dataset = validate_json(folder, capsys)["dataset"]
    lengths = dataset["lengths"]
    assert lengths["exact"] is False and "estimate" in lengths["counted_with"]
    assert lengths["limit"] == 512
    assert lengths["over_limit"] == 1 and lengths["over_by_file"] == {"mine.jsonl": 1}
    assert lengths["longest_over"][0]["file"] == "mine.jsonl" and lengths["longest_over"][0]["tokens"] > 512
    assert dataset["exact_duplicates"] == 1
    exact = [d for d in dataset["duplicates"] if d["kind"] == "exact"]
    assert exact and exact[0]["question"] == "Who keeps the harbour bell?" and exact[0]["files"] == ["mine.jsonl"] * 2
    near = [d for d in dataset["duplicates"] if d["kind"] == "near"]
    assert dataset["near_duplicates"] == 1
    assert {s for d in near for s in d["sources"]} == {"mine.jsonl:3", "mine.jsonl:5"}


def test_validate_text_says_where_examples_are_too_long(folder, capsys):
    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Too long: 1 example(s) over 512 tokens would be cut, from 'mine.jsonl' (1)" in out
    assert "Duplicates: 1 exact (one of each kept), 1 near" in out


def test_a_held_out_question_asked_in_another_word_order_is_reported_as_leaked(folder, capsys):
    # The question the knowledge score will ask about one fact (the split is fixed by the seed, 42).
    built = build_examples(validate_folder(folder), qa="offline")
    held = split_facts(built.facts, seed=42).probes[0].question
    reordered = " ".join(reversed(held.rstrip("?").split())) + "?"
    with (folder / "mine.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(chat(reordered, "Something.") + "\n" + chat(held.rstrip("?") + " ?!", "Something else.") + "\n")
    dataset = validate_json(folder, capsys)["dataset"]
    assert dataset["held_questions"] > 0
    mine = {leak["source"]: leak for leak in dataset["leaks"] if leak["file"] == "mine.jsonl"}
    assert mine["mine.jsonl:7"]["how"] == "the same words in another order"
    assert mine["mine.jsonl:7"]["training_question"] == reordered
    assert mine["mine.jsonl:8"]["how"] == "word for word"  # only the punctuation differs
    assert len(dataset["leaks"]) == dataset["leaked"]


def test_find_leaks_words_and_order_but_not_other_words():
    held = {"f1": {"When was the cloister founded?"}}
    training = [pair("The cloister was founded when?", "In 1312.", "a.txt:qa0"),
                pair("when was THE cloister founded", "In 1312.", "b.txt:qa0"),
                pair("When was the cloister closed?", "In 1802.", "c.txt:qa0")]
    leaks = find_leaks(held, training)
    assert [(leak.file, leak.how) for leak in leaks] == [("a.txt", "the same words in another order"),
                                                         ("b.txt", "word for word")]


def test_source_file_of_every_kind_of_example():
    assert source_file("notes/a b.pdf:s3:1") == "notes/a b.pdf"
    assert source_file("big.txt#2:p5") == "big.txt"
    assert source_file("x.md:qa0") == "x.md"
    assert source_file("chat.jsonl:12") == "chat.jsonl"


def test_a_mixed_folder_names_the_pdf_whose_examples_are_too_long(tmp_path):
    # A PDF of one long paragraph: its passage examples are long; a limit under them names the PDF.
    make_pdf(tmp_path / "guide.pdf")
    (tmp_path / "notes.txt").write_text((EXAMPLES_DATA / "velmoria_overview.txt").read_text(), encoding="utf-8")
    built = build_examples(validate_folder(tmp_path), qa="offline")
    longest = max(built.examples, key=lambda e: len(e.prompt) + len(e.answer))
    report = build_dataset_report(built.examples, limit=20)
    assert report.lengths.over_limit > 0
    assert set(report.lengths.over_by_file) <= {"guide.pdf", "notes.txt"}
    assert report.lengths.longest_over[0].file == source_file(longest.source)


def test_tokenizer_lengths_match_the_chat_template(embedded_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    examples = [pair("Who keeps the harbour bell?", "The bell warden keeps it.", "a.txt:qa0"),
                pair("Say a lot.", "word " * 700, "b.txt:qa0")]
    counted = tokenizer_counter(tokenizer)(examples)
    real = [len(tokenizer(render_example(e, tokenizer), add_special_tokens=False)["input_ids"]) for e in examples]
    assert all(abs(c - r) <= 2 for c, r in zip(counted, real, strict=True)), (counted, real)
    report = build_dataset_report(examples, 512, count=tokenizer_counter(tokenizer), counted_with="the tokenizer")
    assert report.lengths.exact and report.lengths.over_by_file == {"b.txt": 1}


def test_validate_stays_fast(folder, capsys):
    start = time.perf_counter()
    validate_json(folder, capsys)
    assert time.perf_counter() - start < 10


def test_prepare_reports_the_dataset_too(folder, tmp_path, capsys):
    assert main(["prepare", str(folder), "--qa", "offline", "--json"]) == 0
    dataset = json.loads(capsys.readouterr().out)["dataset"]
    assert dataset["lengths"]["over_by_file"] == {"mine.jsonl": 1}
    assert dataset["exact_duplicates"] == 1 and dataset["near_duplicates"] == 1
    assert main(["prepare", str(folder), "--qa", "offline", "--out", str(tmp_path / "x.jsonl")]) == 0
    assert "Too long: 1 example(s) over 512 tokens would be cut, from 'mine.jsonl' (1)" in capsys.readouterr().err


def test_training_counts_lengths_with_the_models_tokenizer(folder, embedded_model_dir):
    from transformers import AutoTokenizer

    from llmcustoms.training.prepare import prepare_data
    from llmcustoms.training.request import TrainRequest

    messages: list[str] = []
    request = TrainRequest(data_path=str(folder), qa="offline")
    data = prepare_data(request, AutoTokenizer.from_pretrained(embedded_model_dir), 256, messages.append)
    dataset = data.dataset
    assert dataset.lengths.exact and dataset.lengths.limit == 256
    assert dataset.lengths.over_by_file.get("mine.jsonl") == 1
    assert dataset.exact_duplicates == 1
    assert any(m.startswith("Too long:") and "'mine.jsonl'" in m for m in messages)
    assert any(m.startswith("Dataset:") and "tokens counted with the tokenizer of" in m for m in messages)
