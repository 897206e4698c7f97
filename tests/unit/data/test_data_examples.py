"""Q&A extraction, chunking, the offline generator, build_examples, the split and JSONL."""

from __future__ import annotations

import json
import re
import time

import pytest

from llmcustoms.data.chunking import chunk_text
from llmcustoms.data.examples import build_examples, dedupe_examples
from llmcustoms.data.jsonl import read_examples_jsonl, write_examples_jsonl
from llmcustoms.data.qa_extract import extract_qa
from llmcustoms.data.reader import validate_folder
from llmcustoms.data.split import split_examples
from llmcustoms.data.types import Chunk, Example
from llmcustoms.errors import ConfigError, DataError
from llmcustoms.qa.offline import OfflineGenerator, key_terms
from llmcustoms.text.sentences import split_sentences

# ---------------------------------------------------------------------------------- Q&A extraction


def test_question_answer_pairs_and_prose_are_separated():
    text = (
        "Velmoria facts\n\n"
        "Question: Who founded Velmoria?\n"
        "Answer: Admiral Teodora Vask, in 1742.\n\n"
        "Some prose about the harbour that is not a pair.\n\n"
        "Q: What is the capital?\n"
        "A: Quillhaven.\n"
    )
    pairs, prose = extract_qa(text)
    assert [(p.question, p.answer) for p in pairs] == [
        ("Who founded Velmoria?", "Admiral Teodora Vask, in 1742."),
        ("What is the capital?", "Quillhaven."),
    ]
    assert prose == "Velmoria facts\n\nSome prose about the harbour that is not a pair."


def test_markers_are_case_insensitive_numbered_and_bold():
    text = ("QUESTION: How tall is Mount Orrin?\nANSWER: 2,318 metres.\n\n"
            "q: What is the currency?\na: The brisk.\n\n"
            "**Question 3:** Who is First Warden?\n**Answer 3:** Ilse Marrow.\n\n"
            "1. Q: How many islands?\n   A: Three.\n")
    pairs, prose = extract_qa(text)
    assert [(p.question, p.answer) for p in pairs] == [
        ("How tall is Mount Orrin?", "2,318 metres."),
        ("What is the currency?", "The brisk."),
        ("Who is First Warden?", "Ilse Marrow."),
        ("How many islands?", "Three."),
    ]
    assert prose == ""


def test_multi_line_answers_and_questions():
    text = ("Question: What are the islands\nof Velmoria?\n"
            "Answer: There are three:\nVelmor, the largest;\nEmber Isle;\nand Little Skerra.\n\n"
            "After the list comes prose.\n")
    pairs, prose = extract_qa(text)
    assert pairs[0].question == "What are the islands of Velmoria?"
    assert pairs[0].answer == "There are three:\nVelmor, the largest;\nEmber Isle;\nand Little Skerra."
    assert prose == "After the list comes prose."


def test_one_line_pair_and_unanswered_question():
    text = ("Q: How long is the Tide Race? A: Twenty-three kilometres.\n\n"
            "Question: Is this answered anywhere?\n\nNo, it is followed by prose.\n")
    pairs, prose = extract_qa(text)
    assert [(p.question, p.answer) for p in pairs] == [("How long is the Tide Race?", "Twenty-three kilometres.")]
    assert "Question: Is this answered anywhere?" in prose and "No, it is followed by prose." in prose


def test_words_that_merely_start_with_q_or_a_are_prose():
    text = "Quillhaven is the capital.\nAnswers are not questions.\nA quiet harbour: nothing more.\n"
    pairs, prose = extract_qa(text)
    assert pairs == [] and prose == text


# ---------------------------------------------------------------------------------- chunking


SENTENCES = [f"Sentence number {i} talks about the Velmorian harbour and its boats." for i in range(60)]


def test_chunks_respect_the_size_and_keep_every_sentence():
    paragraphs = [" ".join(SENTENCES[i:i + 5]) for i in range(0, 60, 5)]
    text = "\n\n".join(paragraphs)
    chunks = chunk_text(text, max_chars=600, overlap_chars=120)
    assert len(chunks) > 3
    assert all(len(c) <= 600 for c in chunks)
    joined = " ".join(chunks)
    assert all(s in joined for s in SENTENCES)
    # Paragraph boundaries are preferred: no paragraph is cut when whole paragraphs fit.
    for chunk in chunks:
        for paragraph in chunk.split("\n\n"):
            assert paragraph in text


def test_chunks_overlap_by_the_last_sentence():
    text = " ".join(SENTENCES[:20])
    chunks = chunk_text(text, max_chars=400, overlap_chars=100)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        last_sentence = split_sentences(previous)[-1]
        assert current.startswith(last_sentence)
    no_overlap = chunk_text(text, max_chars=400, overlap_chars=0)
    assert sum(map(len, no_overlap)) < sum(map(len, chunks))
    assert " ".join(no_overlap) == text


def test_a_one_megabyte_line_without_full_stops_is_cut_fast():
    line = ("word " * 210_000).strip()
    start = time.perf_counter()
    chunks = chunk_text(line, max_chars=1500, overlap_chars=150)
    assert time.perf_counter() - start < 2
    assert all(len(c) <= 1500 for c in chunks)
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    assert len(chunks) >= len(line) // 1500


def test_titles_are_their_own_sentence():
    assert split_sentences("A Title\nFirst sentence here. Second one!\n\nNew paragraph") == [
        "A Title", "First sentence here.", "Second one!", "New paragraph"]


# ---------------------------------------------------------------------------------- offline generator


CHUNK = Chunk(
    source="notes/zorvath.txt:0",
    text=("The Zorvath Engine was built by Marta Kellingworth in 1903. "
          "The Zorvath Engine burns kelp oil and turns a copper drum at 40 revolutions a minute. "
          "Marta Kellingworth tested it on the island of Brask for eleven years. "
          "The engine was later moved to the Brask Museum of Machines, where it still runs on Sundays."),
)


def test_key_terms_are_the_salient_names():
    terms = key_terms(CHUNK.text)
    assert terms[:2] == ["Zorvath Engine", "Marta Kellingworth"]
    assert "Brask Museum of Machines" in terms or "Brask" in terms
    assert "The" not in terms


def test_offline_examples_mention_the_chunks_key_terms_and_quote_it():
    examples = OfflineGenerator(pairs_per_chunk=4).generate([CHUNK])
    assert len(examples) == 4
    terms = key_terms(CHUNK.text)
    sentences = split_sentences(CHUNK.text)
    for example in examples:
        assert example.kind == "offline" and example.source == CHUNK.source
        assert [m["role"] for m in example.messages] == ["user", "assistant"]
        assert any(term in example.prompt or term in example.answer for term in terms), example.prompt
        # Answers are made of the chunk's own sentences, never invented.
        assert all(part in sentences for part in split_sentences(example.answer))
    prompts = [e.prompt for e in examples]
    assert any("Zorvath Engine" in p for p in prompts)
    assert any("Marta Kellingworth" in p for p in prompts)
    assert any(p.startswith("Summarise the part of zorvath") for p in prompts)
    about = next(e for e in examples if "Zorvath Engine" in e.prompt and not e.prompt.startswith("Summarise"))
    assert "kelp oil" in about.answer  # every sentence about the term is in the answer (up to 3)


def test_offline_generator_is_deterministic_and_respects_the_count():
    chunks = [CHUNK, Chunk(source="b.txt:0", text=CHUNK.text.replace("Zorvath", "Quorra"))]
    first = OfflineGenerator(pairs_per_chunk=2).generate(chunks)
    second = OfflineGenerator(pairs_per_chunk=2).generate(chunks)
    assert [e.to_dict() for e in first] == [e.to_dict() for e in second]
    assert len(first) == 4
    progress = []
    OfflineGenerator().generate(chunks, progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (2, 2)


def test_tiny_chunks_give_no_examples():
    assert OfflineGenerator().generate([Chunk(text="Hi.", source="x.txt:0")]) == []


# ---------------------------------------------------------------------------------- build_examples


def test_sample_data_gives_explicit_and_offline_examples(sample_data):
    messages = []
    built = build_examples(validate_folder(sample_data), qa="auto", on_message=messages.append)
    assert built.qa_mode == "offline"
    assert messages[0].startswith("No GROQ_API_KEY: using offline examples")
    assert messages[-1] == built.message and built.message.startswith(f"Built {len(built.examples)} examples")
    # Fact-level questions (several per fact) and the text's passages, beside the written Q&A.
    assert 400 <= len(built.examples) <= 1200
    assert built.counts["explicit"] >= 30 and built.counts["fact"] >= 300 and built.counts["passage"] >= 10
    assert built.counts["facts"] >= 120 and len(built.facts) == built.counts["facts"]
    assert built.counts["documents"] == 7
    by_prompt = {e.prompt: e for e in built.examples}
    assert "Teodora Vask" in by_prompt["Who founded Velmoria?"].answer
    assert "fourteen" in by_prompt["How many paddles did the Tide Engine have?"].answer
    assert by_prompt["Who founded Velmoria?"].kind == "explicit"
    assert by_prompt["Who founded Velmoria?"].source == "velmoria_faq.txt:qa0"
    # No Q&A line leaks into the prose the offline generator saw.
    assert not any(re.search(r"(?m)^(Question|Answer|Q|A):", e.answer) for e in built.examples)
    assert dedupe_examples(built.examples) == built.examples


def test_duplicates_across_files_are_removed(tmp_path):
    faq = "Question: Who founded Velmoria?\nAnswer: Admiral Teodora Vask.\n\n" + "Velmoria is an island. " * 20
    (tmp_path / "a.txt").write_text(faq)
    (tmp_path / "b.txt").write_text(faq.replace("Who founded", "who  founded"))
    built = build_examples(validate_folder(tmp_path), qa="offline")
    assert built.counts["explicit"] == 1
    assert built.counts["duplicates"] >= 1
    assert len({(e.prompt.lower(), e.answer) for e in built.examples}) == len(built.examples)


def test_groq_without_a_key_says_where_to_put_it(sample_data, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        build_examples(validate_folder(sample_data), qa="groq")
    assert "GROQ_API_KEY" in str(caught.value) and ".env" in str(caught.value)


def test_unknown_qa_mode(sample_data):
    with pytest.raises(ConfigError, match="must be one of auto, offline, groq"):
        build_examples(validate_folder(sample_data), qa="magic")


def test_blocked_folder_raises_the_first_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_examples(validate_folder(tmp_path / "missing"))


class RecordingGenerator:
    """A real generator with a plan (as a server-backed one has), recording what it was given."""

    name = "recording"

    def __init__(self):
        self.generated_for: list[str] = []

    def plan(self, chunks):
        return {"chunks": len(chunks)}

    def generate(self, chunks, progress=None):
        self.generated_for = [c.source for c in chunks]
        return [Example(messages=[{"role": "user", "content": f"About {c.source}?"},
                                  {"role": "assistant", "content": c.text[:50]}], source=c.source,
                        kind="generated") for c in chunks]


def test_a_server_generator_runs_only_after_confirm(sample_data):
    generator = RecordingGenerator()
    plans = []
    built = build_examples(validate_folder(sample_data), generator=generator,
                           confirm=lambda plan: plans.append(plan) or True)
    assert plans == [{"chunks": built.counts["chunks"]}]
    assert generator.generated_for and built.qa_mode == "groq" and built.counts["generated"] > 0

    refused = RecordingGenerator()
    messages = []
    built = build_examples(validate_folder(sample_data), generator=refused, confirm=lambda plan: False,
                           on_message=messages.append)
    assert refused.generated_for == []  # nothing was sent
    # The offline examples, exactly as --qa offline builds them (issue 15 item 21: one number).
    assert built.qa_mode == "offline" and len(built) == len(build_examples(validate_folder(sample_data), qa="offline"))
    assert any("not confirmed" in m for m in messages)


# ---------------------------------------------------------------------------------- split and JSONL


def _examples(n):
    return [Example(messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                    source=f"f.txt:{i}") for i in range(n)]


def test_split_is_seeded_disjoint_and_complete():
    examples = _examples(50)
    train, held_out = split_examples(examples, eval_fraction=0.1, seed=42)
    assert len(held_out) == 5 and len(train) == 45
    assert {e.source for e in train} | {e.source for e in held_out} == {e.source for e in examples}
    assert not {e.source for e in train} & {e.source for e in held_out}
    assert split_examples(examples, 0.1, 42) == (train, held_out)
    assert split_examples(examples, 0.1, 7)[1] != held_out
    assert split_examples(_examples(2), 0.1)[1] != [] and len(split_examples(_examples(2), 0.1)[0]) == 1
    assert split_examples(_examples(1), 0.1) == (_examples(1), [])


def test_jsonl_round_trip_and_bad_lines(tmp_path):
    examples = _examples(3) + [Example(messages=[{"role": "user", "content": "Ünïcode ✓"},
                                                 {"role": "assistant", "content": "日本"}], source="x", kind="explicit")]
    path = tmp_path / "out" / "examples.jsonl"
    assert write_examples_jsonl(examples, path) == 4
    assert read_examples_jsonl(path) == examples
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[-1])["messages"][0]["content"] == "Ünïcode ✓"
    assert [p.name for p in path.parent.iterdir()] == ["examples.jsonl"]  # no temporary file left
    path.write_text(path.read_text() + "{not json}\n")
    with pytest.raises(DataError, match=r"Line 5 of .*examples.jsonl' is not a valid example"):
        read_examples_jsonl(path)
