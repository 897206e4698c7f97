"""Real documents for the data-format tests, made by real writers: fpdf2 (PDF), python-docx (Word),
the EPUB layout (OCF container + OPF package + XHTML chapters) written with zipfile, and plain HTML,
Markdown and JSONL text."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

#: Three pages of distinct prose: each page has a heading and two paragraphs.
PAGES = [
    ("Thaw Market", [
        "The thaw market opens in early spring when the ice on the river breaks and the traders come down "
        "from the hills with sledges full of cheese, furs and carved bone.",
        "Skarn cheese is made from reindeer milk and aged in cold caves for several years before it is sold.",
    ]),
    ("Greyvault Observatory", [
        "The observatory was built by the astronomer Ilse Vantorp in the year 1891. Its brass telescope was "
        "carried up the mountain by forty mules over three summers.",
        "The dome was finished in 1894 and the valley school still teaches its stu-\ndents to read the stars there.",
    ]),
    ("Iskel Railway", [
        "The railway through the Iskel valley opened in 1902. It has eleven bridges and one tunnel, and the "
        "journey from the coast to the market town takes four hours in winter.",
        "The last steam engine on the line was retired in 1968 and now stands outside the station at Holm.",
    ]),
]
RUNNING_HEADER = "Marrowfen Field Guide - Second Edition"


def make_pdf(path: Path, pages: list[tuple[str, list[str]]] = PAGES, header: str = RUNNING_HEADER,
             user_password: str | None = None) -> Path:
    """A PDF with a running header, 'Page N' footers, a heading and paragraphs on each page."""
    from fpdf import FPDF

    class Document(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=9)
            self.cell(0, 8, header, align="C")
            self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 10, f"Page {self.page_no()}", align="C")

    pdf = Document()
    if user_password:
        pdf.set_encryption(owner_password="owner", user_password=user_password)
    for heading, paragraphs in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=14)
        pdf.multi_cell(0, 8, heading)
        pdf.ln(4)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path, text_pages: int = 0, image_pages: int = 2) -> Path:
    """A PDF whose first ``text_pages`` pages have text and the next ``image_pages`` only a picture (a scan)."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    for number in range(text_pages):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, PAGES[number % len(PAGES)][1][0])
    for _ in range(image_pages):
        pdf.add_page()
        pdf.image(Image.new("L", (200, 260), color=200), x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    """A Word document with a title heading, a paragraph, a bulleted list, a sub-heading and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Marrowfen Harbour", level=1)
    document.add_paragraph("The harbour at Marrowfen freezes for eleven weeks every winter.")
    document.add_paragraph("Herring boats", style="List Bullet")
    document.add_paragraph("Ice cutters", style="List Bullet")
    document.add_heading("Tides", level=2)
    table = document.add_table(rows=3, cols=2)
    for row, cells in zip(table.rows, [("Month", "Tide"), ("March", "4 metres"), ("June", "2 metres")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_paragraph("The spring tide floods the lower market twice a year.")
    document.save(str(path))
    return path


WEB_PAGE = """<!DOCTYPE html><html><head><title>Marrowfen</title>
<style>body { color: #333 }</style><script>window.tracking = "enabled";</script></head>
<body>
<header class="site-header"><a href="/">Home</a> <a href="/about">About us</a></header>
<nav><ul><li><a href="/travel">Travel deals</a></li><li><a href="/food">Food guide</a></li></ul></nav>
<div id="cookie-consent">We use cookies to improve your experience. <button>Accept all cookies</button></div>
<main><article>
<h1>The Lantern Festival</h1>
<p>Every November the keepers paint the lighthouse <em>white</em> again, and the village holds a
<a href="/festival">lantern festival</a> with brine cakes.</p>
<p>The festival was first held in 1857, when the lighthouse was built.</p>
</article></main>
<aside class="sidebar">Related stories you may like</aside>
<footer>Copyright 2026 Marrowfen Tourist Board. All rights reserved.</footer>
</body></html>
"""

MARKDOWN = """---
title: Ferry notes
tags: [ferry, harbour]
---
# The Holm Ferry

The ferry to **Holm** leaves at *seven* every morning, see [the timetable](https://example.org/t).
![the ferry](ferry.png)

```bash
echo "not prose"
```

| Boat | Built |
|------|-------|
| Saltwren | 1931 |
| Gullhaven | 1954 |
"""


def make_epub(path: Path, chapters: list[tuple[str, str]]) -> Path:
    """An EPUB 3: mimetype, container, OPF (manifest + spine in the given order) and a nav document."""
    manifest = ['<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>']
    spine = ['<itemref idref="nav" linear="no"/>']
    files: dict[str, str] = {}
    for number, (title, body) in enumerate(chapters, 1):
        name = f"text/ch{number}.xhtml"
        files[f"OEBPS/{name}"] = (f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                                  f"<head><title>{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>")
        manifest.append(f'<item id="c{number}" href="{name}" media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="c{number}"/>')
    files["OEBPS/nav.xhtml"] = ('<html xmlns="http://www.w3.org/1999/xhtml"><body><nav><ol><li>Contents page</li>'
                                '</ol></nav></body></html>')
    files["OEBPS/content.opf"] = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier>'
        '<dc:title>Marrowfen</dc:title><dc:language>en</dc:language></metadata>'
        f'<manifest>{"".join(manifest)}</manifest><spine>{"".join(spine)}</spine></package>')
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml",
                         '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                         'container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/'
                         'oebps-package+xml"/></rootfiles></container>')
        for name, text in files.items():
            archive.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)
    return path


def make_zip_bomb(path: Path, member: str, megabytes: int = 64) -> Path:
    """A ZIP (named .docx or .epub) whose ``member`` unpacks to ``megabytes`` of zeros from a few KB."""
    block = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip")
        with archive.open(member, "w", force_zip64=True) as handle:
            for _ in range(megabytes):
                handle.write(block)
    return path


def chat_lines() -> list[str]:
    """JSONL lines: one example in each layout (OpenAI, ShareGPT, Alpaca), then three bad lines."""
    return [
        json.dumps({"messages": [{"role": "system", "content": "You know Marrowfen."},
                                 {"role": "user", "content": "Who built the Greyvault Observatory?"},
                                 {"role": "assistant", "content": "Ilse Vantorp built it in 1891."}]}),
        json.dumps({"conversations": [{"from": "human", "value": "When did the Iskel railway open?"},
                                      {"from": "gpt", "value": "It opened in 1902."}]}),
        json.dumps({"instruction": "Name the cheese sold at the thaw market.", "input": "",
                    "output": "Skarn cheese, made from reindeer milk."}),
        json.dumps({"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "Hm."}]}),
        json.dumps({"messages": [{"role": "wizard", "content": "Hi"}, {"role": "assistant", "content": "Hi."}]}),
        '{"messages": [{"role": "user", "content": "cut sh',
    ]
