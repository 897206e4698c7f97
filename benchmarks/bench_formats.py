"""Document-reading speed (issue 23): PDF pages per second against poppler's ``pdftotext``, MB/s for the
other formats, and the time to the first line of ``validate``'s report on a mixed folder. ``--big``: peak
memory (RSS) of reading a 10 MB and a 100 MB mixed folder, each in a fresh process: it must not grow with
the folder's size.

Usage:
    .venv/bin/python benchmarks/bench_formats.py [--pages 300] [--mb 2]
    .venv/bin/python benchmarks/bench_formats.py --big [--sizes 10 100]
    .venv/bin/python benchmarks/bench_data.py --formats     # the same, from the data benchmark

Needs the dev extras (fpdf2 writes the PDF) and, for the reference, ``pdftotext`` from Debian's
``poppler-utils``. Goal: PDF at least half as fast as ``pdftotext`` on the same file. Prints only.
"""

from __future__ import annotations

import argparse
import json
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


#: The big folder's bytes on disk by format (PDF, Word and EPUB are compressed: their text is 2–5× their size).
BIG_SHARES = {".txt": 0.30, ".md": 0.20, ".html": 0.25, ".pdf": 0.10, ".docx": 0.075, ".epub": 0.075}
#: Distinct PDF, Word and EPUB files written (slow writers); the folder holds copies of them beside them.
BIG_DISTINCT = 3


def _write_doc(path: Path, paragraphs: list[str], index: int) -> None:
    """One document of ``path``'s format from ``paragraphs`` (each writer as the tests' fixtures use it)."""
    import docx

    from tests.helpers.documents import make_epub

    if path.suffix == ".txt":
        path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    elif path.suffix == ".md":
        path.write_text(f"---\ntitle: Part {index}\n---\n\n" + "\n\n".join(
            f"## Section {i}\n\n{p}" if i % 20 == 0 else p for i, p in enumerate(paragraphs)), encoding="utf-8")
    elif path.suffix == ".html":
        path.write_text("<!DOCTYPE html><html><head><title>Part</title><script>var a=1;</script></head><body>"
                        "<nav><a href='/'>Home</a></nav><div class='cookie-banner'>We use cookies.</div><main>"
                        + "".join(f"<p>{p}</p>" for p in paragraphs) + "</main><footer>(c)</footer></body></html>",
                        encoding="utf-8")
    elif path.suffix == ".docx":
        document = docx.Document()
        for i, paragraph in enumerate(paragraphs):
            if i % 20 == 0:
                document.add_heading(f"Section {i}", level=2)
            document.add_paragraph(paragraph)
        document.save(str(path))
    elif path.suffix == ".epub":
        make_epub(path, [(f"Chapter {i}", "</p><p>".join(paragraphs[i:i + 40]))
                         for i in range(0, len(paragraphs), 40)])


def make_big_folder(dest: Path, megabytes: float, seed: int = 7) -> int:
    """A mixed folder of about ``megabytes`` on disk under ``dest`` (sub-folders of ~20 files); its bytes.

    Text, Markdown and web pages are each written from their own shuffle of a pool of generated paragraphs
    (varied text); PDF, Word and EPUB are ``BIG_DISTINCT`` distinct files each, then copies of them (their
    writers take seconds a file). Files are ~1 MB of text each.
    """
    rng = random.Random(seed)
    pool = [p for p in make_text(6 * 1024 * 1024, seed).split("\n\n") if p.strip()]
    total = 0
    count = 0
    for suffix, share in BIG_SHARES.items():
        budget = megabytes * 1024 * 1024 * share
        written: list[Path] = []
        size = 0
        while size < budget:
            folder = dest / f"part{count // 20:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"doc{count:05d}{suffix}"
            count += 1
            if suffix in (".pdf", ".docx", ".epub") and len(written) >= BIG_DISTINCT:
                shutil.copyfile(written[len(written) % BIG_DISTINCT], target)
            elif suffix == ".pdf":
                make_pdf(target, 150, seed=rng.randrange(1 << 30))
            else:
                _write_doc(target, rng.sample(pool, 2000), count)  # ~1 MB of text (~0.5 kB a paragraph)
            written.append(target)
            size += target.stat().st_size
        total += size
    return total


def _hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process's current program (VmHWM, MB; 0 when gone).

    Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across exec, so a child started by a big parent
    (this benchmark after building a folder) would show the parent's size.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _ChildWatch:
    """Samples the peak RSS (VmHWM) of this process's child processes (the reader's workers) every 20 ms."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            for task in Path("/proc/self/task").iterdir():
                try:
                    pids = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), _hwm_mb(pid))

    def stop(self) -> float:
        """Stop sampling; the largest peak seen of any one child (MB)."""
        self._stop.set()
        self._thread.join()
        return max(self.peaks.values(), default=0.0)


def measure(folder: Path, cache_chars: int | None = None) -> dict[str, float]:
    """Run in a fresh process: validate ``folder``, then stream every document's text as the training data
    prep does (``iter_documents``); peak RSS of this process and of the reader's worker processes.

    ``cache_chars``: the extracted text the check may keep for the build (``reader.TEXT_CACHE_CHARS``).
    """
    from llmcustoms.data import reader
    from llmcustoms.data.documents import iter_documents
    from llmcustoms.data.reader import validate_folder

    if cache_chars is not None:
        reader.TEXT_CACHE_CHARS = cache_chars
    at_start = _hwm_mb()
    watch = _ChildWatch()
    started = time.perf_counter()
    report = validate_folder(folder)
    validated = time.perf_counter() - started
    after_validate = _hwm_mb()
    chars = 0
    for document in iter_documents(report):  # each document dropped after counting, as a stream
        chars += len(document.text)
    kept = sum(len(t) for t in report._texts.values())
    return {"files": len(report.files), "usable": report.usable_files, "chars": chars, "kept_chars": kept,
            "validate_s": validated, "total_s": time.perf_counter() - started, "rss_start_mb": at_start,
            "rss_after_validate_mb": after_validate, "peak_rss_mb": _hwm_mb(),
            "worker_peak_rss_mb": watch.stop(), "cache_chars": reader.TEXT_CACHE_CHARS}


def run_big(sizes: list[float], cache_mb: list[float | None]) -> list[str]:
    """Build each mixed folder under /tmp, measure it in a fresh process per text-cache size (None: the
    default), and return the report's lines."""
    lines = ["| folder MB on disk | text cache (M chars) | files | text read (M chars) | "
             "text kept by the check (M chars) | validate s | total s | RSS after imports MB | "
             "peak RSS after validate MB | peak RSS MB | reader worker peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for megabytes in sizes:
        with tempfile.TemporaryDirectory(prefix="bench_formats_big_") as tmp:
            folder = Path(tmp) / "mixed"
            size = make_big_folder(folder, megabytes)
            for cache in cache_mb:
                extra = [] if cache is None else ["--cache-mb", str(cache)]
                out = subprocess.run([sys.executable, __file__, "--measure", str(folder), *extra], check=True,
                                     capture_output=True, text=True).stdout
                m = json.loads(out.strip().splitlines()[-1])
                lines.append(f"| {size / 1024**2:.1f} | {m['cache_chars'] / 1e6:.0f} | {m['files']} | "
                             f"{m['chars'] / 1e6:.1f} | {m['kept_chars'] / 1e6:.1f} | {m['validate_s']:.1f} | "
                             f"{m['total_s']:.1f} | {m['rss_start_mb']:.0f} | {m['rss_after_validate_mb']:.0f} | "
                             f"{m['peak_rss_mb']:.0f} | {m['worker_peak_rss_mb']:.0f} |")
                print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--mb", type=float, default=2.0, help="megabytes of text in each non-PDF document")
    parser.add_argument("--big", action="store_true", help="peak memory on mixed folders of --sizes MB")
    parser.add_argument("--sizes", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--cache-mb", type=float, nargs="+", default=None,
                        help="also measure with the check's text cache set to these millions of characters")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh process of --big
    args = parser.parse_args()
    random.seed(0)
    if args.measure:
        cache = None if not args.cache_mb else int(args.cache_mb[0] * 1e6)
        print(json.dumps(measure(args.measure, cache)))
        return
    if args.big:
        run_big(args.sizes, [None, *(args.cache_mb or [])])
        return
    for line in run(args.pages, args.mb):
        print(line)


if __name__ == "__main__":
    main()
