"""Make a mixed-format copy of a folder of .txt files: the same documents as PDF, Word, web page,
Markdown and EPUB (issue 23, point 7: knowledge must not depend on the format).

Usage:
    .venv/bin/python scripts/make_mixed_folder.py                       # marrowfen → marrowfen_mixed
    .venv/bin/python scripts/make_mixed_folder.py SRC_DIR DEST_DIR

Each .txt file's first line is its title (a heading), the rest its paragraphs (blank-line separated).
The files are given the formats in turn, sorted by name: PDF (fpdf2, with a running header and page
numbers the reader must drop), Word (python-docx), web page (with navigation, a cookie banner and a
footer the reader must drop), Markdown (with front matter) and EPUB (two chapters). Needs the dev
extras (fpdf2). Writes only DEST_DIR.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers.documents import make_epub  # noqa: E402  (the EPUB layout the tests use)

DEFAULT_SRC = ROOT / "benchmarks" / "knowledge_data" / "marrowfen"
DEFAULT_DEST = ROOT / "benchmarks" / "knowledge_data" / "marrowfen_mixed"


def _split(text: str) -> tuple[str, list[str]]:
    blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return blocks[0], blocks[1:]


def write_pdf(path: Path, title: str, paragraphs: list[str]) -> None:
    """A PDF with a running header and page numbers (fpdf2); Q&A lines keep their line breaks."""
    from fpdf import FPDF

    class Document(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=8)
            self.cell(0, 6, "Marrowfen Papers", align="C")
            self.ln(10)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=8)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

    pdf = Document()
    pdf.set_margins(35, 20, 35)  # a narrow column and wide leading: a short text still fills several pages,
    pdf.add_page()               # so the running header repeats and must be dropped
    pdf.set_font("Helvetica", "B", size=14)
    pdf.multi_cell(0, 8, title)
    pdf.ln(3)
    pdf.set_font("Helvetica", size=11)
    for paragraph in paragraphs:
        pdf.multi_cell(0, 9, paragraph)
        pdf.ln(4)
    pdf.output(str(path))


def write_docx(path: Path, title: str, paragraphs: list[str]) -> None:
    """A Word document: the title as a heading, each paragraph (each Q&A line) a paragraph."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        for line in paragraph.split("\n"):
            document.add_paragraph(line)
    document.save(str(path))


def write_html(path: Path, title: str, paragraphs: list[str]) -> None:
    """A saved web page: navigation, a cookie banner and a footer around the article."""
    body = "".join(f"<p>{html.escape(line)}</p>" for paragraph in paragraphs for line in paragraph.split("\n"))
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
        "<style>p{margin:1em}</style><script>var analytics=1;</script></head><body>"
        "<nav><a href=\"/\">Home</a> <a href=\"/valley\">The valley</a> <a href=\"/visit\">Visit</a></nav>"
        "<div class=\"cookie-banner\">This site uses cookies. <button>Accept</button></div>"
        f"<main><article><h1>{html.escape(title)}</h1>{body}</article></main>"
        "<footer>Marrowfen Valley Society. All rights reserved.</footer></body></html>",
        encoding="utf-8")


def write_markdown(path: Path, title: str, paragraphs: list[str]) -> None:
    """Markdown with YAML front matter; Q&A lines stay lines (Markdown soft breaks)."""
    path.write_text(f"---\ntitle: {title}\nsource: {path.stem}.txt\n---\n\n# {title}\n\n"
                    + "\n\n".join(paragraphs) + "\n", encoding="utf-8")


def write_epub(path: Path, title: str, paragraphs: list[str]) -> None:
    """An EPUB of two chapters: the first half of the paragraphs and the second."""
    half = max(1, len(paragraphs) // 2)
    chapters = [(title, "</p><p>".join(html.escape(p) for p in paragraphs[:half])),
                (f"{title} (continued)", "</p><p>".join(html.escape(p) for p in paragraphs[half:]))]
    make_epub(path, chapters)


WRITERS = [(".pdf", write_pdf), (".docx", write_docx), (".html", write_html), (".md", write_markdown),
           (".epub", write_epub)]


def make_mixed(src: Path, dest: Path) -> list[Path]:
    """Write one document per .txt file of ``src`` into ``dest`` (formats in turn); return their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for index, source in enumerate(sorted(src.glob("*.txt"))):
        suffix, writer = WRITERS[index % len(WRITERS)]
        title, paragraphs = _split(source.read_text(encoding="utf-8"))
        target = dest / f"{source.stem}{suffix}"
        writer(target, title, paragraphs)
        written.append(target)
    return written


def main(argv: list[str]) -> None:
    src = Path(argv[0]) if argv else DEFAULT_SRC
    dest = Path(argv[1]) if len(argv) > 1 else DEFAULT_DEST
    for path in make_mixed(src, dest):
        print(path.relative_to(dest.parent) if dest.parent in path.parents else path)


if __name__ == "__main__":
    main(sys.argv[1:])
