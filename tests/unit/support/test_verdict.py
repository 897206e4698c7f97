"""The support verdict on a small folder of real files with answers known right or wrong: the mark, the
passage (file and line), the marked quote, the index kept in the run folder, moved, changed and chat-only
documents, and CJK answers."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from llmcustoms.runs.rundir import RunDir
from llmcustoms.support.index import SupportIndex, clear_cache
from llmcustoms.support.show import support_lines
from llmcustoms.support.verdict import NO_SUPPORT, support_for_run
from tests.helpers.known_answers import ANSWERS, write_folder


@pytest.fixture
def run(tmp_path):
    folder = write_folder(tmp_path)
    return RunDir.create("tiny", root=tmp_path / "runs", status="done", data_path=str(folder))


@pytest.mark.parametrize(("question", "answer", "right"), ANSWERS)
def test_the_mark_agrees_with_right_and_wrong(run, question, answer, right):
    support = support_for_run(str(run.path), question, answer)
    assert support.supported is right, (answer, support)
    assert (support.line_text() == NO_SUPPORT) is (not right)


@pytest.mark.parametrize(("question", "answer", "file", "line", "marked"), [
    ("Who opened the Brisca Museum?", "Tomas Reed opened it in 1881.", "notes/customs.txt", 7,
     ["«Tomas» «Reed»", "«1881»", "«opened»"]),
    ("How high is Mount Farrow?", "It rises 1,912 metres.", "harbour.txt", 6, ["«1,912» «metres»"]),
    ("江戸幕府は誰によって開かれましたか", "徳川家康です。", "japan.txt", 3, ["«徳川家康»"]),
])
def test_the_passage_is_where_the_fact_is_and_the_answer_words_are_marked(run, question, answer, file, line, marked):
    support = support_for_run(str(run.path), question, answer)
    assert (support.supported, support.file, support.line) == (True, file, line)
    text = (run.path / "../..").resolve() / "docs" / file
    assert support.passage in text.read_text(encoding="utf-8")
    assert text.read_text(encoding="utf-8")[support.start:].startswith(support.passage)
    for piece in marked:
        assert piece in support.marked_quote()
    assert f"{file}, line {line}" in support.line_text()


def test_show_source_prints_the_passage_whole_and_the_closest_when_none_supports(run):
    right = support_for_run(str(run.path), "Who opened the Brisca Museum?", "Tomas Reed opened it in 1881.")
    lines = support_lines(right, whole=True)
    assert lines[0].startswith("  ↳ supported by notes/customs.txt, line 7")
    assert "It keeps the logbooks of Admiral Noor Lethe." in "\n".join(lines)
    wrong = support_for_run(str(run.path), "Who opened the Brisca Museum?", "Queen Amara opened it in 1950.")
    lines = support_lines(wrong, whole=True)
    assert lines[0] == "  ↳ " + NO_SUPPORT
    assert "closest passage, which does not" in lines[1]


def test_the_index_is_kept_in_the_run_folder_and_read_back(run):
    SupportIndex.for_run(run.path)
    manifest = run.path / "support" / "manifest.json"
    assert manifest.is_file() and (run.path / "support" / "bm25").is_dir()
    written = manifest.stat().st_mtime_ns
    clear_cache()
    index = SupportIndex.for_run(run.path)
    assert manifest.stat().st_mtime_ns == written  # loaded, not rebuilt
    assert index.note is None and len(index.passages) == 11
    assert support_for_run(str(run.path), "Who founded Brisca?", "Admiral Noor Lethe.").supported


def test_changed_documents_are_said_once_searched_as_they_are_now_and_marked(run, tmp_path):
    SupportIndex.for_run(run.path)
    clear_cache()
    customs = tmp_path / "docs" / "notes" / "customs.txt"
    customs.write_text(customs.read_text(encoding="utf-8").replace("Tomas Reed", "Vera Holm"), encoding="utf-8")
    os.utime(customs, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    (tmp_path / "docs" / "japan.txt").unlink()
    index = SupportIndex.for_run(run.path)
    assert index.note is not None
    assert "notes/customs.txt changed" in index.note and "japan.txt is gone" in index.note
    now = support_for_run(str(run.path), "Who opened the Brisca Museum?", "Vera Holm opened it in 1881.")
    assert now.supported and now.changed and "(changed)" in now.line_text()
    assert not support_for_run(str(run.path), "Who opened the Brisca Museum?", "Tomas Reed opened it.").supported
    unchanged = support_for_run(str(run.path), "Who founded Brisca?", "Admiral Noor Lethe.")
    assert unchanged.supported and not unchanged.changed


def test_moved_documents_are_said_and_the_stored_passages_still_answer(run, tmp_path):
    SupportIndex.for_run(run.path)
    clear_cache()
    shutil.move(tmp_path / "docs", tmp_path / "elsewhere")
    index = SupportIndex.for_run(run.path)
    assert "no longer at" in (index.note or "")
    assert support_for_run(str(run.path), "Who founded Brisca?", "Admiral Noor Lethe.").supported


def test_moved_before_any_index_has_no_passages_and_says_so(run, tmp_path):
    shutil.move(tmp_path / "docs", tmp_path / "elsewhere")
    support = support_for_run(str(run.path), "Who founded Brisca?", "Admiral Noor Lethe.")
    assert not support.supported and "no longer at" in (support.note or "")


def test_a_run_trained_on_chat_jsonl_only_has_no_passages(tmp_path):
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "chats.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                                                 {"role": "assistant", "content": "Hello"}]}) + "\n")
    run = RunDir.create("tiny", root=tmp_path / "runs", status="done", data_path=str(folder))
    support = support_for_run(str(run.path), "Hi", "Hello there")
    assert not support.supported and support.file is None
    assert "chat examples (JSONL) only" in (support.note or "")
    assert support.line_text() == NO_SUPPORT


def test_support_agreement_scores_the_known_answers(run):
    from benchmarks.support_agreement import support_agreement

    result = support_agreement(run.path, ANSWERS)
    assert (result.answers, result.agreement, result.precision, result.recall, result.wrong_but_supported) == (
        len(ANSWERS), 1.0, 1.0, 1.0, 0.0)
    flipped = support_agreement(run.path, [(q, a, not c) for q, a, c in ANSWERS[:4]])
    assert flipped.agreement == 0.0 and flipped.wrong_but_supported == 1.0
    assert flipped.format_row("flipped") == "| flipped | 4 | 0 % | 0 % | 0 % | 100 % |"


def test_a_damaged_index_is_built_again(run):
    SupportIndex.for_run(run.path)
    clear_cache()
    (run.path / "support" / "passages.jsonl").write_text("{not json\n")
    assert support_for_run(str(run.path), "Who founded Brisca?", "Admiral Noor Lethe.").supported
