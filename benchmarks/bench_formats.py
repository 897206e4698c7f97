"""Document-reading speed (issue 23): PDF pages per second against poppler's ``pdftotext``, MB/s for the
other formats, and the time to the first line of ``validate``'s report on a mixed folder.

Usage:
    .venv/bin/python benchmarks/bench_formats.py [--pages 300] [--mb 2]
    .venv/bin/python benchmarks/bench_data.py --formats     # the same, from the data benchmark

Needs the dev extras (fpdf2 writes the PDF) and, for the reference, ``pdftotext`` from Debian's
``poppler-utils``. Goal: PDF at least half as fast as ``pdftotext`` on the same file. Prints only.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_data import make_text  # noqa: E402  (the data benchmark's generated prose)


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def make_pdf(path: Path, pages: int, seed: int = 0) -> None:
    """A ``pages``-page PDF of generated prose with a running header and page numbers (fpdf2)."""
    from fpdf import FPDF

    class Document(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, "Sorrel Sea Gazetteer", align="C")
            self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 10, str(self.page_no()), align="C")

    text = make_text(pages * 3000, seed)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    pdf = Document()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    index = 0
    while pdf.page_no() < pages or pdf.get_y() < 200:
        paragraph = paragraphs[index % len(paragraphs)].encode("latin-1", "replace").decode("latin-1")
        pdf.multi_cell(0, 5, paragraph)
        pdf.ln(3)
        index += 1
        if pdf.page_no() >= pages and pdf.get_y() > 200:
            break
    pdf.output(str(path))


def make_others(folder: Path, megabytes: float, seed: int = 1) -> dict[str, Path]:
    """A Markdown file, a web page, a Word file and an EPUB of about ``megabytes`` of text each."""
    import docx

    from tests.helpers.documents import make_epub

    text = make_text(int(megabytes * 1024 * 1024), seed)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    files = {"markdown": folder / "notes.md", "html": folder / "page.html", "docx": folder / "doc.docx",
             "epub": folder / "book.epub"}
    files["markdown"].write_text("\n\n".join(f"## Part {i}\n\n{p}" if i % 20 == 0 else p
                                             for i, p in enumerate(paragraphs)), encoding="utf-8")
    files["html"].write_text("<html><body><nav>Home</nav><main>" + "".join(f"<p>{p}</p>" for p in paragraphs)
                             + "</main><footer>c</footer></body></html>", encoding="utf-8")
    document = docx.Document()
    for i, paragraph in enumerate(paragraphs):
        if i % 20 == 0:
            document.add_heading(f"Part {i}", level=2)
        document.add_paragraph(paragraph)
    document.save(str(files["docx"]))
    chapters = [(f"Chapter {i}", "</p><p>".join(paragraphs[i:i + 40])) for i in range(0, len(paragraphs), 40)]
    make_epub(files["epub"], chapters)
    return files


def run(pages: int = 300, megabytes: float = 2.0) -> list[str]:
    """Measure and return the report's lines."""
    from llmcustoms.data.formats import extract
    from llmcustoms.data.reader import validate_folder

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pdf = work / "mixed" / "gazetteer.pdf"
        pdf.parent.mkdir()
        make_pdf(pdf, pages)
        ours = _best(lambda: extract(pdf))
        result = extract(pdf)
        lines.append(f"PDF ({result.units} pages, {pdf.stat().st_size / 1024**2:.1f} MB): pypdfium2 + cleanup "
                     f"{result.units / ours:,.0f} pages/s ({ours:.2f} s); dropped {', '.join(result.dropped)}")
        if shutil.which("pdftotext"):
            reference = _best(lambda: subprocess.run(["pdftotext", "-q", str(pdf), "-"], check=True,
                                                     stdout=subprocess.DEVNULL))
            lines.append(f"pdftotext (poppler) on the same file: {result.units / reference:,.0f} pages/s "
                         f"({reference:.2f} s); ours is {reference / ours:.2f}× its speed (goal ≥ 0.5×)")
        else:
            lines.append("pdftotext not installed (apt-get install poppler-utils): no reference")
        for fmt, path in make_others(work / "mixed", megabytes).items():
            size = path.stat().st_size / 1024**2
            seconds = _best(lambda p=path: extract(p))
            words = extract(path).words
            lines.append(f"{fmt}: {size:.2f} MB on disk, {words:,} words, {size / seconds:.1f} MB/s ({seconds:.2f} s)")
        started = time.perf_counter()
        report = validate_folder(work / "mixed")  # every file read and reported, examples not yet counted
        lines.append(f"validate_folder on the mixed folder ({len(report.files)} files, "
                     f"{sum(f.words for f in report.files):,} words): {time.perf_counter() - started:.2f} s "
                     f"to the per-file report (the example count, built after it, is not timed here)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--mb", type=float, default=2.0, help="megabytes of text in each non-PDF document")
    args = parser.parse_args()
    random.seed(0)
    for line in run(args.pages, args.mb):
        print(line)


if __name__ == "__main__":
    main()
