"""Progress while a long document is read (issue 23, point 4): the PDF reader's pages come back from the
sandboxed worker, and ``llmcustoms validate`` says how far it is on stderr while one file takes long."""

from __future__ import annotations

from pathlib import Path

from llmcustoms.cli import _slow_file_progress
from llmcustoms.data.formats.sandbox import Sandbox
from tests.helpers.documents import PAGES, make_pdf


def test_the_worker_reports_the_pages_of_a_pdf_as_it_reads_them(tmp_path: Path):
    pdf = make_pdf(tmp_path / "guide.pdf", pages=PAGES * 2)
    seen: list[tuple[int, int]] = []
    with Sandbox(progress_every_s=0.0) as sandbox:  # every page, so a small file shows it
        result = sandbox.extract(pdf, "pdf", lambda done, total: seen.append((done, total)))
    total = len(PAGES) * 2
    assert result.units == total
    assert seen == [(n, total) for n in range(1, total + 1)]


def test_by_default_a_quick_file_sends_no_progress(tmp_path: Path):
    seen: list[tuple[int, int]] = []
    with Sandbox() as sandbox:  # a message a second at most: a 3-page PDF is read before the first
        sandbox.extract(make_pdf(tmp_path / "guide.pdf"), "pdf", lambda done, total: seen.append((done, total)))
    assert seen == []


def test_validate_prints_a_line_while_a_file_takes_long(capsys):
    on_progress = _slow_file_progress(every_s=0.0)
    on_progress("books/atlas.pdf", 0, 0)  # the file starts: nothing said yet
    assert capsys.readouterr().err == ""
    on_progress("books/atlas.pdf", 800, 2000)
    assert capsys.readouterr().err.startswith("Reading 'books/atlas.pdf': page 800 of 2,000 (")
    slow = _slow_file_progress(every_s=60.0)
    slow("a.pdf", 0, 0)
    slow("a.pdf", 10, 20)  # within the first minute: quiet
    assert capsys.readouterr().err == ""


def test_validate_folder_says_when_each_document_starts(tmp_path: Path):
    from llmcustoms.data.reader import validate_folder

    make_pdf(tmp_path / "guide.pdf")
    (tmp_path / "notes.txt").write_text("The ferry leaves at seven. " * 20, encoding="utf-8")
    calls: list[tuple[str, int, int]] = []
    validate_folder(tmp_path, on_progress=lambda *call: calls.append(call))
    assert calls == [("guide.pdf", 0, 0)]  # a .txt is streamed at once; no page read took a second
