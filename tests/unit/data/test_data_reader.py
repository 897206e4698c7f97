"""validate_folder / iter_documents on every bad folder in the issue's list, with the messages checked.

Every folder is real (files, links, FIFOs on disk); every test also checks that nothing the user
owns was changed by reading it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from llmcustoms.data.documents import iter_documents
from llmcustoms.data.reader import MIN_TRAIN_CHARS, validate_folder
from llmcustoms.errors import DataError
from tests.helpers.data_reader import PROSE, assert_sentence, file_report, validate_unchanged


def good(folder: Path, name: str = "good.txt") -> Path:
    path = folder / name
    path.write_text(PROSE, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- folder level


def test_missing_path_is_blocked_with_a_clear_sentence(tmp_path):
    missing = tmp_path / "no-such-folder"
    report = validate_folder(missing)
    assert report.verdict == "blocked" and not report.ok
    assert "does not exist" in report.errors[0]
    assert_sentence(report.errors[0], str(missing))
    with pytest.raises(DataError) as caught:
        report.raise_if_blocked()
    assert str(caught.value) == report.errors[0]
    assert caught.value.exit_code == 2


def test_a_file_instead_of_a_folder(tmp_path):
    path = good(tmp_path)
    report, _ = validate_unchanged(path)
    assert report.verdict == "blocked"
    assert "is a file, not a folder" in report.errors[0]
    assert_sentence(report.errors[0], str(path))


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    report, _ = validate_unchanged(folder)
    assert report.verdict == "blocked"
    assert "is empty" in report.errors[0]
    assert_sentence(report.errors[0], str(folder))


def test_no_txt_files_names_what_was_found(tmp_path):
    # Markdown, PDF, Word, web pages and EPUB are read (tests/unit/data/test_formats.py); these are not.
    (tmp_path / "notes.odt").write_text(PROSE)
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04")
    report, _ = validate_unchanged(tmp_path)
    assert report.verdict == "blocked"
    assert "has no .txt files nor other files it can read" in report.errors[0]
    assert_sentence(report.errors[0], "book.xlsx", "notes.odt")


def test_too_little_text_says_the_minimum(tmp_path):
    (tmp_path / "short.txt").write_text("Velmoria has three islands.", encoding="utf-8")
    report, _ = validate_unchanged(tmp_path)
    assert report.verdict == "blocked"
    assert "only 27 characters" in report.errors[0]
    assert f"at least {MIN_TRAIN_CHARS}" in report.errors[0]
    assert_sentence(report.errors[0], str(tmp_path))


def test_nothing_usable_names_the_first_problem(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"")
    (tmp_path / "b.txt").write_text("   \n\t\n")
    report, _ = validate_unchanged(tmp_path)
    assert report.verdict == "blocked"
    assert report.errors[0].startswith(f"No .txt file in '{tmp_path}' can be used: 'a.txt' is empty (0 bytes)")
    assert "1 more .txt file(s)" in report.errors[0]


# ---------------------------------------------------------------------------------- file level


def test_zero_byte_file_is_skipped_and_named(tmp_path):
    good(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "warnings" and report.usable_files == 1
    empty = file_report(report, "empty.txt")
    assert empty.status == "skipped"
    assert empty.problems == ["'empty.txt' is empty (0 bytes); skipped it."]
    assert [d.relpath for d in documents] == ["good.txt"]


def test_whitespace_only_file_is_skipped(tmp_path):
    good(tmp_path)
    (tmp_path / "blank.txt").write_text(" \n\n\t  \r\n   ")
    report, documents = validate_unchanged(tmp_path)
    blank = file_report(report, "blank.txt")
    assert blank.status == "skipped"
    assert "holds only whitespace" in blank.problems[0]
    assert_sentence(blank.problems[0], "blank.txt")
    assert [d.relpath for d in documents] == ["good.txt"]


def test_binary_data_named_txt(tmp_path):
    good(tmp_path)
    (tmp_path / "photo.txt").write_bytes(bytes(range(256)) * 40)
    report, documents = validate_unchanged(tmp_path)
    photo = file_report(report, "photo.txt")
    assert photo.status == "skipped" and photo.encoding == "binary"
    assert photo.problems == ["'photo.txt' contains binary data, not text (a NUL byte at offset 0); skipped it."]
    assert all(d.relpath != "photo.txt" for d in documents)


def test_binary_without_nul_is_named_with_offset(tmp_path):
    good(tmp_path)
    blob = bytes([0x01, 0x02, 0x03, 0xFF, 0xFE, 0x80, 0x05, 0x06]) * 100
    (tmp_path / "blob.txt").write_bytes(blob)
    report, _ = validate_unchanged(tmp_path)
    problem = file_report(report, "blob.txt").problems[0]
    assert problem.startswith("'blob.txt' contains binary data, not text (byte 0xFF at offset 3)")


def test_latin1_file_is_named_with_byte_and_offset(tmp_path):
    good(tmp_path)
    text = "The café in Quillhaven serves bitterleaf tea. " * 10
    data = text.encode("latin-1")
    (tmp_path / "latin.txt").write_bytes(data)
    report, documents = validate_unchanged(tmp_path)
    latin = file_report(report, "latin.txt")
    assert latin.status == "skipped" and latin.encoding == "latin-1"
    offset = data.index(b"\xe9")
    assert f"byte 0xE9 at offset {offset}" in latin.problems[0]
    assert "Latin-1" in latin.problems[0] and "save it as UTF-8" in latin.problems[0]
    assert_sentence(latin.problems[0], "latin.txt")
    assert [d.relpath for d in documents] == ["good.txt"]


def test_latin1_byte_far_into_a_file_reports_the_right_offset(tmp_path):
    # The bad byte lies beyond the first 1 MiB block: the offset must still be absolute.
    data = ("a" * 99 + "\n").encode() * 15000 + "é".encode("latin-1") + b" more text\n"
    (tmp_path / "long.txt").write_bytes(data)
    good(tmp_path)
    report = validate_folder(tmp_path)
    assert f"byte 0xE9 at offset {15000 * 100}" in file_report(report, "long.txt").problems[0]


@pytest.mark.parametrize(("codec", "name"), [("utf-16", "UTF-16 (little-endian)"),
                                              ("utf-16-be", None), ("utf-32", "UTF-32 (little-endian)")])
def test_utf16_and_utf32_files_are_named(tmp_path, codec, name):
    good(tmp_path)
    data = PROSE.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
        name = "UTF-16 (big-endian)"
    (tmp_path / "wide.txt").write_bytes(data)
    report, documents = validate_unchanged(tmp_path)
    wide = file_report(report, "wide.txt")
    assert wide.status == "skipped" and wide.encoding == name
    assert wide.problems == [f"'wide.txt' is encoded as {name} (it starts with a byte-order mark), not UTF-8; "
                             f"skipped it — save it as UTF-8 to use it."]
    assert [d.relpath for d in documents] == ["good.txt"]


def test_utf16_without_bom_is_recognised(tmp_path):
    good(tmp_path)
    (tmp_path / "nobom.txt").write_bytes(PROSE.encode("utf-16-le"))
    report = validate_folder(tmp_path)
    problem = file_report(report, "nobom.txt").problems[0]
    assert "looks like UTF-16 (little-endian) text without a byte-order mark" in problem
    assert "offset 1" in problem


def test_nul_byte_in_text_is_named_with_offset(tmp_path):
    good(tmp_path)
    data = PROSE.encode() + b"\x00" + PROSE.encode()
    (tmp_path / "nul.txt").write_bytes(data)
    report, documents = validate_unchanged(tmp_path)
    nul = file_report(report, "nul.txt")
    assert nul.status == "skipped"
    assert f"contains a NUL byte at offset {len(PROSE.encode())}" in nul.problems[0]
    assert_sentence(nul.problems[0], "nul.txt")
    assert [d.relpath for d in documents] == ["good.txt"]


def test_utf8_bom_and_crlf_are_read_and_normalised(tmp_path):
    text = PROSE.replace("\n", "\r\n")
    (tmp_path / "windows.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "ok", report.summary_lines()
    windows = file_report(report, "windows.txt")
    assert windows.encoding == "utf-8-sig" and windows.status == "ok"
    assert windows.chars == len(PROSE)
    assert documents[0].text == PROSE  # no BOM, no CR


def test_crlf_split_across_blocks_is_one_newline(tmp_path):
    # A CR at the very end of the first 1 MiB block and its LF at the start of the next.
    first = "x" * ((1 << 20) - 1) + "\r"
    data = (first + "\nsecond line of text\r\n").encode()
    (tmp_path / "edge.txt").write_bytes(data)
    report = validate_folder(tmp_path)
    (document,) = iter_documents(report)
    expected = "x" * ((1 << 20) - 1) + "\nsecond line of text\n"
    assert document.text == expected
    assert file_report(report, "edge.txt").chars == len(expected)


def test_multibyte_character_split_across_blocks(tmp_path):
    data = ("a" * ((1 << 20) - 1)).encode() + "é and more text here".encode()
    (tmp_path / "split.txt").write_bytes(data)
    report = validate_folder(tmp_path)
    assert file_report(report, "split.txt").status == "ok"
    (document,) = iter_documents(report)
    assert document.text.endswith("aé and more text here")


def test_a_12_mb_file_is_streamed_in_pieces_with_a_note(tmp_path):
    paragraph = PROSE.strip() + "\n\n"
    text = paragraph * (12 * 1024 * 1024 // len(paragraph) + 1)
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    assert (tmp_path / "big.txt").stat().st_size > 12 * 1024 * 1024
    report, documents = validate_unchanged(tmp_path)
    big = file_report(report, "big.txt")
    assert report.ok and big.status == "warning" and report.verdict == "warnings"
    assert big.problems == ["'big.txt' is 12.0 MB, over the 10.0 MB per-file size; it will be read in pieces "
                            "(streaming) rather than all at once."]
    assert big.chars == len(text)
    assert len(documents) >= 12
    assert [d.part for d in documents] == list(range(len(documents)))
    assert all(len(d.text) <= 1 << 20 for d in documents)
    assert all(d.text.endswith("\n\n") for d in documents[:-1])  # cut at paragraph ends
    assert "".join(d.text for d in documents) == text


def test_a_directory_named_x_txt_is_walked_not_read(tmp_path):
    good(tmp_path)
    (tmp_path / "x.txt").mkdir()
    good(tmp_path / "x.txt", "inside.txt")
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "ok"
    assert [f.relpath for f in report.files] == ["good.txt", "x.txt/inside.txt"]
    assert [d.relpath for d in documents] == ["good.txt", "x.txt/inside.txt"]


def test_only_a_directory_named_x_txt_means_no_txt_files(tmp_path):
    (tmp_path / "x.txt").mkdir()
    report = validate_folder(tmp_path)
    assert report.verdict == "blocked" and "has no .txt files nor other files" in report.errors[0]


def validate_within(folder, seconds: float, failure: str):
    """``validate_unchanged(folder)`` in a daemon thread, failing the test if it takes over ``seconds``
    (a hang must fail the test, not stall the whole run)."""
    done = threading.Event()
    result = {}

    def run():
        result["value"] = validate_unchanged(folder)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), f"validate_folder {failure}"
    return result["value"]


def test_symlink_loops_are_detected(tmp_path):
    good(tmp_path)
    os.symlink("self.txt", tmp_path / "self.txt")          # a link to itself
    sub = tmp_path / "sub"
    sub.mkdir()
    good(sub, "deeper.txt")
    os.symlink("..", sub / "up")                            # a folder link back to an ancestor
    report, documents = validate_within(tmp_path, 30, "did not finish on a symlink loop")
    assert file_report(report, "self.txt").problems == [
        "'self.txt' is a symbolic link that loops back on itself; skipped it."]
    assert "'sub/up' is a link back to a folder that contains it (a loop); skipped it." in report.warnings
    assert sorted(d.relpath for d in documents) == ["good.txt", "sub/deeper.txt"]


def test_broken_link_is_named(tmp_path):
    good(tmp_path)
    os.symlink("gone.txt", tmp_path / "link.txt")
    report, documents = validate_unchanged(tmp_path)
    link = file_report(report, "link.txt")
    assert link.status == "skipped"
    assert link.problems == ["'link.txt' is a broken link (it points to 'gone.txt', which does not exist); "
                             "skipped it."]
    assert [d.relpath for d in documents] == ["good.txt"]


def test_links_out_of_the_folder_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET " * 100)
    data = tmp_path / "data"
    data.mkdir()
    good(data)
    os.symlink(outside / "secret.txt", data / "secret.txt")
    os.symlink(outside, data / "elsewhere")
    os.symlink(data / "good.txt", data / "again.txt")  # inside, but the same file: read once
    report, documents = validate_unchanged(data)
    assert any("'secret.txt' is a link to" in w and "outside the data folder" in w for w in report.warnings)
    assert any("'elsewhere' is a link to" in w for w in report.warnings)
    assert file_report(report, "again.txt").problems == ["'again.txt' is the same file as 'good.txt'; read it only "
                                                         "once."]
    assert all("SECRET" not in d.text for d in documents)
    assert [d.relpath for d in documents] == ["good.txt"]


def test_a_fifo_named_txt_never_hangs(tmp_path):
    good(tmp_path)
    os.mkfifo(tmp_path / "pipe.txt")
    report, documents = validate_within(tmp_path, 30, "hung on a FIFO")
    pipe = file_report(report, "pipe.txt")
    assert pipe.status == "skipped"
    assert pipe.problems == ["'pipe.txt' is a FIFO (named pipe), not a regular file; skipped it."]
    assert [d.relpath for d in documents] == ["good.txt"]


def test_names_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "données perso"
    folder.mkdir()
    name = "mes notes é 日本 ü.txt"
    (folder / name).write_text("Ünïcödé Velmoria 日本語. " + PROSE, encoding="utf-8")
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "ok"
    assert [f.relpath for f in report.files] == [f"données perso/{name}"]
    assert documents[0].text.startswith("Ünïcödé Velmoria 日本語.")
    assert report.files[0].chars == len("Ünïcödé Velmoria 日本語. " + PROSE)


def test_one_line_of_a_megabyte(tmp_path):
    line = ("word " * (1024 * 1024 // 5)).strip()
    (tmp_path / "line.txt").write_text(line, encoding="utf-8")
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "ok"
    assert report.total_chars == len(line)
    assert documents[0].text == line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_is_named(tmp_path):
    good(tmp_path)
    locked = tmp_path / "locked.txt"
    good(tmp_path, "locked.txt")
    locked.chmod(0)
    try:
        report = validate_folder(tmp_path)
    finally:
        locked.chmod(0o644)
    problem = file_report(report, "locked.txt").problems[0]
    assert problem == "'locked.txt' cannot be read (Permission denied); skipped it — check its permissions."


def test_hidden_entries_are_skipped_and_only_unexpected_ones_noted(tmp_path):
    good(tmp_path)
    for folder in (".git", ".notes"):
        (tmp_path / folder).mkdir()
        good(tmp_path / folder, "ORIG.txt")
    good(tmp_path, ".draft.txt")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    report = validate_folder(tmp_path)
    assert [f.relpath for f in report.files] == ["good.txt"]
    (note,) = [w for w in report.warnings if "hidden" in w]
    assert note.startswith("Skipped 2 hidden file(s) or folder(s)") and ".draft.txt" in note and ".notes" in note
    assert ".git" not in note and ".DS_Store" not in note


def test_everything_bad_at_once_keeps_good_files_and_the_folder_unchanged(tmp_path):
    good(tmp_path)
    good(tmp_path, "second file.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin.txt").write_bytes("Crème brûlée à Quillhaven.".encode("latin-1"))
    (tmp_path / "wide.txt").write_bytes(PROSE.encode("utf-16"))
    (tmp_path / "nul.txt").write_bytes(b"text\x00text")
    os.mkfifo(tmp_path / "pipe.txt")
    os.symlink("nowhere.txt", tmp_path / "broken.txt")
    (tmp_path / "dir.txt").mkdir()
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "warnings" and report.ok
    assert report.usable_files == 2
    assert sorted(d.relpath for d in documents) == ["good.txt", "second file.txt"]
    for message in report.warnings:
        assert_sentence(message)
    skipped = {f.relpath for f in report.files if f.status == "skipped"}
    assert skipped == {"empty.txt", "latin.txt", "wide.txt", "nul.txt", "pipe.txt", "broken.txt"}
    # Each skipped file's reason is also a report-level warning naming it.
    for relpath in skipped:
        assert any(w.startswith(f"'{relpath}'") for w in report.warnings), relpath


def test_report_totals_json_and_summary(tmp_path):
    good(tmp_path)
    (tmp_path / "faq.txt").write_text("Question: Who built it?\nAnswer: Emeric Dallow.\n\nQ: When?\nA: In 1848.\n")
    report = validate_folder(tmp_path)
    assert report.total_chars == len(PROSE) + len((tmp_path / "faq.txt").read_text())
    assert report.estimated_tokens == report.total_chars // 4
    assert report.estimated_examples >= 2 + 3  # two explicit pairs + one prose chunk's examples
    data = json.loads(json.dumps(report.to_dict()))
    assert data["verdict"] == "ok" and data["usable_files"] == 2
    assert {f["relpath"] for f in data["files"]} == {"good.txt", "faq.txt"}
    assert any("Verdict: ok" in line for line in report.summary_lines())
