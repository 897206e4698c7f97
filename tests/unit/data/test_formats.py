"""Real folders in: Markdown, PDF, Word, web pages, EPUB and chat JSONL, each made by a real writer
(tests/helpers/documents.py), read through validate_folder and build_examples; every bad input is one
sentence, the rest of the folder is still used, and nothing in the folder is changed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llmcustoms.data.chatfiles import read_chat_file
from llmcustoms.data.examples import build_examples
from llmcustoms.data.formats import extract
from llmcustoms.data.formats.layout import join_pages
from llmcustoms.data.formats.sandbox import Sandbox
from llmcustoms.data.formats.types import ExtractError
from llmcustoms.data.reader import validate_folder
from tests.helpers.data_reader import PROSE, assert_sentence, file_report, validate_unchanged
from tests.helpers.documents import (
    MARKDOWN,
    RUNNING_HEADER,
    WEB_PAGE,
    chat_lines,
    make_docx,
    make_epub,
    make_pdf,
    make_scanned_pdf,
    make_zip_bomb,
)


def _one_problem(report, relpath: str) -> str:
    problems = file_report(report, relpath).problems
    assert len(problems) == 1, problems
    assert_sentence(problems[0], relpath)
    return problems[0]


# --------------------------------------------------------------------------- each format's text


def test_pdf_drops_running_header_and_page_numbers_and_rejoins_hyphenated_words(tmp_path):
    make_pdf(tmp_path / "guide.pdf")
    result = extract(tmp_path / "guide.pdf")
    assert result.format == "pdf" and result.units == 3 and result.unit == "pages"
    assert RUNNING_HEADER not in result.text and "Page 2" not in result.text
    assert "students" in result.text and "stu-" not in result.text and "stu dents" not in result.text
    paragraphs = result.text.split("\n\n")
    # Wrapped lines are joined into whole paragraphs; headings stay their own paragraph, in page order.
    assert paragraphs[0] == "Thaw Market"
    assert paragraphs[1].startswith("The thaw market opens") and paragraphs[1].endswith("carved bone.")
    assert paragraphs.index("Greyvault Observatory") < paragraphs.index("Iskel Railway")
    assert "\n" not in paragraphs[1]
    assert result.dropped == ["3 repeated header/footer lines", "3 page numbers", "1 line-end hyphen (words rejoined)"]


def test_layout_keeps_a_heading_that_differs_per_page_and_joins_a_sentence_across_a_page_break():
    pages = [["Report 2026", "Harbour", "The ice on the harbour breaks in", "1"],
             ["Report 2026", "late March, after the spring tide.", "2"]]
    joined = join_pages(pages)
    assert joined.text == "Harbour\n\nThe ice on the harbour breaks in late March, after the spring tide."
    assert (joined.headers, joined.page_numbers) == (2, 2)


def test_word_document_keeps_headings_list_items_and_table_rows_in_order(tmp_path):
    make_docx(tmp_path / "harbour.docx")
    result = extract(tmp_path / "harbour.docx")
    assert result.format == "docx" and result.units == 2  # two headings
    assert result.text.split("\n\n") == [
        "Marrowfen Harbour", "The harbour at Marrowfen freezes for eleven weeks every winter.", "Herring boats",
        "Ice cutters", "Tides", "Month: March; Tide: 4 metres.", "Month: June; Tide: 2 metres.",
        "The spring tide floods the lower market twice a year.",
    ]


def test_web_page_keeps_the_article_and_drops_navigation_cookie_banner_scripts_and_footer(tmp_path):
    (tmp_path / "festival.html").write_text(WEB_PAGE, encoding="utf-8")
    result = extract(tmp_path / "festival.html")
    assert result.text.split("\n\n") == [
        "The Lantern Festival",
        "Every November the keepers paint the lighthouse white again, and the village holds a lantern festival "
        "with brine cakes.",
        "The festival was first held in 1857, when the lighthouse was built.",
    ]
    for chrome in ("cookies", "Travel deals", "About us", "tracking", "color", "Copyright", "Related stories"):
        assert chrome not in result.text
    assert {"1 cookie banner", "1 navigation block", "1 footer", "1 sidebar", "1 page header"} <= set(result.dropped)


def test_epub_reads_its_chapters_in_spine_order_without_the_contents_page(tmp_path):
    make_epub(tmp_path / "book.epub", [("The Ferry", "The ferry leaves at seven."),
                                       ("The Market", "The market opens in spring.")])
    result = extract(tmp_path / "book.epub")
    assert (result.units, result.unit) == (2, "chapters")
    assert result.text.split("\n\n") == ["The Ferry", "The ferry leaves at seven.", "The Market",
                                         "The market opens in spring."]
    assert "Contents page" not in result.text


def test_markdown_becomes_plain_sentences_without_front_matter_code_or_images(tmp_path):
    (tmp_path / "ferry.md").write_text(MARKDOWN, encoding="utf-8")
    result = extract(tmp_path / "ferry.md")
    assert result.text.split("\n\n") == [
        "The Holm Ferry",
        "The ferry to Holm leaves at seven every morning, see the timetable.",
        "Boat: Saltwren; Built: 1931.", "Boat: Gullhaven; Built: 1954.",
    ]
    assert result.dropped == ["1 code block", "1 front matter block", "1 image"]


# --------------------------------------------------------------------------- chat examples


def test_chat_jsonl_in_three_layouts_names_each_bad_line(tmp_path):
    (tmp_path / "chat.jsonl").write_text("\n".join(chat_lines()) + "\n", encoding="utf-8")
    chat = read_chat_file(tmp_path / "chat.jsonl", "chat.jsonl")
    assert dict(chat.layouts) == {"openai": 1, "sharegpt": 1, "alpaca": 1}
    assert [e.messages[-1]["content"] for e in chat.examples] == [
        "Ilse Vantorp built it in 1891.", "It opened in 1902.", "Skarn cheese, made from reindeer milk."]
    assert chat.examples[0].messages[0] == {"role": "system", "content": "You know Marrowfen."}
    assert chat.examples[1].messages[0] == {"role": "user", "content": "When did the Iskel railway open?"}
    assert [line.split(" ")[1:3] for line in chat.bad_lines] == [["line", "4"], ["line", "5"], ["line", "6"]]
    assert "empty user turn" in chat.bad_lines[0] and "'wizard'" in chat.bad_lines[1]
    assert "not valid JSON" in chat.bad_lines[2]
    for sentence in chat.bad_lines:
        assert_sentence(sentence, "chat.jsonl")


def test_chat_examples_are_training_examples_as_they_are_mixed_with_the_documents(tmp_path):
    (tmp_path / "chat.jsonl").write_text("\n".join(chat_lines()) + "\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text(PROSE, encoding="utf-8")
    report, _ = validate_unchanged(tmp_path)
    chat_report = file_report(report, "chat.jsonl")
    assert (chat_report.format, chat_report.units, chat_report.status) == ("jsonl", 3, "warning")
    assert len(chat_report.problems) == 3 and "line 6" in chat_report.problems[2]
    built = build_examples(report, qa="offline")
    from_chat = [e for e in built.examples if e.source.startswith("chat.jsonl:")]
    assert [e.source for e in from_chat] == ["chat.jsonl:1", "chat.jsonl:2", "chat.jsonl:3"]
    assert from_chat[0].messages[-1]["content"] == "Ilse Vantorp built it in 1891."
    assert built.counts["chat"] == 3 and any(e.source.startswith("notes.txt") for e in built.examples)


# --------------------------------------------------------------------------- a mixed folder end to end


def test_mixed_folder_reports_format_units_words_and_what_was_dropped(tmp_path):
    make_pdf(tmp_path / "guide.pdf")
    (tmp_path / "docs").mkdir()
    make_docx(tmp_path / "docs" / "harbour.docx")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "festival.html").write_text(WEB_PAGE, encoding="utf-8")
    (tmp_path / "ferry.md").write_text(MARKDOWN, encoding="utf-8")
    make_epub(tmp_path / "book.epub", [("The Ferry", "The ferry leaves at seven."),
                                       ("The Market", "The market opens in spring.")])
    (tmp_path / "notes.txt").write_text(PROSE, encoding="utf-8")
    report, documents = validate_unchanged(tmp_path)
    assert report.verdict == "ok", report.warnings
    formats = {f.relpath: (f.format, f.units, f.unit) for f in report.files}
    assert formats == {"book.epub": ("epub", 2, "chapters"), "docs/harbour.docx": ("docx", 2, "sections"),
                       "ferry.md": ("markdown", 1, "sections"), "guide.pdf": ("pdf", 3, "pages"),
                       "notes.txt": ("txt", 0, ""), "web/festival.html": ("html", 1, "sections")}
    assert all(f.words > 10 for f in report.files)
    assert [d.relpath for d in documents] == sorted(formats)
    pdf_text = next(d.text for d in documents if d.relpath == "guide.pdf")
    assert pdf_text == extract(tmp_path / "guide.pdf").text
    lines = report.summary_lines()
    words = file_report(report, "guide.pdf").words
    assert abs(words - len(pdf_text.split())) <= 3
    assert f"file: guide.pdf — PDF, 3 pages, {words} words; dropped 3 repeated header/footer lines, 3 page numbers, " \
           "1 line-end hyphen (words rejoined)" in lines
    data = json.loads(json.dumps(report.to_dict()))
    pdf = next(f for f in data["files"] if f["relpath"] == "guide.pdf")
    assert (pdf["format"], pdf["units"], pdf["unit"], pdf["words"]) == ("pdf", 3, "pages", words)
    built = build_examples(report, qa="offline")
    sources = {e.source.split(":")[0].split("#")[0] for e in built.examples}
    assert sources == set(formats)
    # The PDF's facts come out as sentences, not page furniture.
    assert not any(RUNNING_HEADER in m["content"] for e in built.examples for m in e.messages)


# --------------------------------------------------------------------------- bad input


def test_every_bad_document_is_one_sentence_and_the_rest_of_the_folder_is_used(tmp_path):
    (tmp_path / "notes.txt").write_text(PROSE, encoding="utf-8")
    make_scanned_pdf(tmp_path / "scan.pdf")
    make_scanned_pdf(tmp_path / "half_scan.pdf", text_pages=1, image_pages=2)
    make_pdf(tmp_path / "locked.pdf", user_password="secret")
    full = make_pdf(tmp_path / "whole.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(full[: len(full) // 3])
    word = make_docx(tmp_path / "whole.docx").read_bytes()
    (tmp_path / "whole.docx").unlink()
    (tmp_path / "cut.docx").write_bytes(word[: len(word) // 2])
    book = make_epub(tmp_path / "x.epub", [("One", "Text one.")]).read_bytes()
    (tmp_path / "x.epub").unlink()
    (tmp_path / "cut.epub").write_bytes(book[: len(book) // 2])
    make_zip_bomb(tmp_path / "bomb.docx", "word/document.xml")
    make_zip_bomb(tmp_path / "bomb.epub", "OEBPS/ch1.xhtml")
    (tmp_path / "page.pdf").write_text(WEB_PAGE, encoding="utf-8")  # a web page saved as .pdf
    (tmp_path / "noise.pdf").write_bytes(b"\x00\x01 not a pdf at all \xff" * 20)
    (tmp_path / "empty.docx").write_bytes(b"")
    started = time.monotonic()
    report, documents = validate_unchanged(tmp_path)
    assert time.monotonic() - started < 30
    assert report.ok
    used = {d.relpath for d in documents}
    assert used == {"notes.txt", "half_scan.pdf", "whole.pdf", "page.pdf"}
    assert "none of its 2 pages has a text layer" in _one_problem(report, "scan.pdf")
    assert "pages 2, 3 have no text layer" in _one_problem(report, "half_scan.pdf")
    assert "encrypted PDF" in _one_problem(report, "locked.pdf")
    assert "damaged or cut short" in _one_problem(report, "cut.pdf")
    assert "Word" in _one_problem(report, "cut.docx")
    assert "EPUB" in _one_problem(report, "cut.epub")
    assert "ZIP bomb" in _one_problem(report, "bomb.docx") and "ZIP bomb" in _one_problem(report, "bomb.epub")
    assert "is a web page saved with the .pdf ending; read it as a web page" in _one_problem(report, "page.pdf")
    assert "not really a PDF" in _one_problem(report, "noise.pdf")
    assert "empty" in _one_problem(report, "empty.docx")
    for relpath in ("scan.pdf", "locked.pdf", "cut.pdf", "cut.docx", "cut.epub", "bomb.docx", "bomb.epub",
                    "noise.pdf", "empty.docx"):
        assert file_report(report, relpath).status == "skipped"
    assert "lantern festival" in next(d.text for d in documents if d.relpath == "page.pdf")


def test_a_file_over_the_time_limit_is_skipped_and_the_reader_restarts_for_the_next(tmp_path):
    make_pdf(tmp_path / "slow.pdf")
    (tmp_path / "notes.txt").write_text(PROSE, encoding="utf-8")
    report = validate_folder(tmp_path, timeout_s=0.000001)  # no real read fits: the limit is what is tested
    problem = _one_problem(report, "slow.pdf")
    assert "per-file time limit" in problem and report.ok and report.usable_files == 1
    with Sandbox(timeout_s=0.000001) as sandbox:
        with pytest.raises(ExtractError, match="time limit"):
            sandbox.extract(tmp_path / "slow.pdf", "pdf")
        sandbox.timeout_s = 60
        assert sandbox.extract(tmp_path / "slow.pdf", "pdf").units == 3


def test_a_file_over_the_memory_limit_is_skipped_with_the_limit_named_and_the_folder_goes_on(tmp_path):
    # A 2.6 MB Markdown note: the reader's token tree needs a few hundred MB, far past a 128 MB limit
    # (the default is 4 GB), while the small files before and after it fit easily.
    (tmp_path / "a_small.md").write_text(MARKDOWN, encoding="utf-8")
    (tmp_path / "b_huge.md").write_text("".join(f"Line {i} of a **long** note.\n\n" for i in range(80_000)),
                                        encoding="utf-8")
    (tmp_path / "c_notes.txt").write_text(PROSE, encoding="utf-8")
    make_pdf(tmp_path / "d_guide.pdf")
    report = validate_folder(tmp_path, memory_bytes=128 * 1024**2)
    problem = _one_problem(report, "b_huge.md")
    assert "128 MB memory limit" in problem and problem.startswith("'b_huge.md' ")
    assert file_report(report, "b_huge.md").status == "skipped"
    assert report.ok and report.usable_files == 3  # read before and after it, by the same or a fresh reader
    assert file_report(report, "d_guide.pdf").units == 3
    with Sandbox(memory_bytes=128 * 1024**2) as sandbox:
        with pytest.raises(ExtractError, match="128 MB memory limit"):
            sandbox.extract(tmp_path / "b_huge.md", "markdown")
        sandbox.memory_bytes = 4 * 1024**3  # a worker started after this one has the default limit again
        sandbox.close()
        assert sandbox.extract(tmp_path / "b_huge.md", "markdown").words == 480_000


def test_the_reader_frees_each_files_objects_before_the_next_so_its_memory_stays_flat(tmp_path):
    # python-docx leaves reference cycles that only the cycle collector frees; left to its thresholds they
    # piled up in the long-lived worker (65 → 99 MB over 30 Word files). The worker collects after each file.
    import gc
    from multiprocessing import Pipe

    from llmcustoms.data.formats import sandbox as worker

    docx = make_docx(tmp_path / "notes.docx")
    requests, ask = Pipe(duplex=False)
    replies, answer = Pipe(duplex=False)
    ask.send((str(docx), "docx"))
    ask.close()  # the worker's loop ends after this one file
    gc.collect()
    gc.disable()  # nothing else collects while the worker serves: what it leaves is what it did not free
    try:
        worker._serve(requests, answer)
        left = gc.collect()
    finally:
        gc.enable()
    status, value = replies.recv()
    assert status == "ok" and value.words > 20
    assert left < 20, f"{left} objects in reference cycles left after reading one Word file"


def test_a_folder_of_documents_that_are_all_unreadable_is_blocked_with_the_first_reason(tmp_path):
    make_scanned_pdf(tmp_path / "scan.pdf")
    report, _ = validate_unchanged(tmp_path)
    assert report.verdict == "blocked"
    assert report.errors[0].startswith(f"No file in '{tmp_path}' can be used: 'scan.pdf' is a scanned PDF")
    assert_sentence(report.errors[0], "scan.pdf")


def test_documents_read_again_when_their_text_was_not_kept(tmp_path):
    make_pdf(tmp_path / "guide.pdf")
    report = validate_folder(tmp_path)
    kept = report.kept_text("guide.pdf")
    report._texts.clear()  # as for a folder whose documents hold more text than the memory budget
    from llmcustoms.data.documents import iter_documents

    assert [d.text for d in iter_documents(report)] == [kept]


def test_importing_the_data_package_loads_no_document_library():
    import subprocess
    import sys

    code = ("import sys, llmcustoms.data.reader, llmcustoms.data.examples; "
            "print([m for m in ('pypdfium2', 'docx', 'selectolax', 'markdown_it', 'lxml') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3]).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- the command line


def test_validate_lists_per_file_format_pages_words_and_dropped_text_and_json(tmp_path, capsys):
    from llmcustoms.cli import main

    make_pdf(tmp_path / "guide.pdf")
    (tmp_path / "festival.html").write_text(WEB_PAGE, encoding="utf-8")
    (tmp_path / "chat.jsonl").write_text("\n".join(chat_lines()) + "\n", encoding="utf-8")
    make_scanned_pdf(tmp_path / "scan.pdf")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "file: guide.pdf — PDF, 3 pages, " in out and "dropped 3 repeated header/footer lines" in out
    assert "file: festival.html — web page, 1 section, " in out and "1 cookie banner" in out
    assert "file: chat.jsonl — chat examples, 3 examples, " in out and "'chat.jsonl' line 4 has an empty" in out
    assert "'scan.pdf' is a scanned PDF: none of its 2 pages has a text layer" in out
    assert "Traceback" not in out
    assert main(["validate", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    files = {f["relpath"]: f for f in data["files"]}
    assert (files["guide.pdf"]["format"], files["guide.pdf"]["units"], files["guide.pdf"]["unit"]) == ("pdf", 3, "pages")
    assert files["guide.pdf"]["dropped"][:2] == ["3 repeated header/footer lines", "3 page numbers"]
    assert files["festival.html"]["words"] > 20 and files["scan.pdf"]["status"] == "skipped"
    assert files["chat.jsonl"]["units"] == 3 and data["verdict"] == "warnings"


# --------------------------------------------------------------------------- knowledge does not depend on the format


def test_a_mixed_format_copy_of_marrowfen_gives_the_same_facts_and_written_qa(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("make_mixed_folder", root / "scripts" / "make_mixed_folder.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = root / "benchmarks" / "knowledge_data" / "marrowfen"
    written = script.make_mixed(source, tmp_path / "mixed")
    assert sorted(p.suffix for p in written) == [".docx", ".epub", ".html", ".md", ".pdf"]
    plain = build_examples(validate_folder(source), qa="offline")
    mixed_report = validate_folder(tmp_path / "mixed")
    assert mixed_report.verdict == "ok", mixed_report.warnings
    mixed = build_examples(mixed_report, qa="offline")
    facts = {(f.sentence, f.span) for f in plain.facts}
    found = facts & {(f.sentence, f.span) for f in mixed.facts}
    assert len(found) >= 0.95 * len(facts)  # the bar; measured: all 152 of 152
    written_qa = {(e.prompt, e.answer) for e in plain.examples if e.kind == "explicit"}
    assert written_qa and written_qa <= {(e.prompt, e.answer) for e in mixed.examples if e.kind == "explicit"}
