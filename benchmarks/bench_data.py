"""Data-step benchmark: read + validate + examples + chunk + tokenize a 10 MB folder, and stream a large one.

Usage:
    .venv/bin/python benchmarks/bench_data.py                 # 10 MB timed, streaming RSS at 50 and 200 MB
    .venv/bin/python benchmarks/bench_data.py --stream-tokenize  # tokenize in the streaming pass too
    .venv/bin/python benchmarks/bench_data.py --large-mb 1024 # stream a 1 GB folder too
    .venv/bin/python benchmarks/bench_data.py --no-write      # print only, leave RESULTS.md alone
    .venv/bin/python benchmarks/bench_data.py --formats       # PDF pages/s against pdftotext, MB/s per format

The timed pass is what ``llmcustoms train`` does before training: ``validate_folder``,
``build_examples(qa='offline')``, ``split_examples`` and ``tokenize_examples`` with the embedded
SmolLM2 tokenizer (max_seq_len 512). Target: ≤ 5 s for 10 MB on 2 cores.

The streaming pass runs in a fresh process per folder size and reports that process's peak RSS:
``validate_folder`` then ``iter_documents`` → Q&A extraction → chunks → offline examples →
tokenized in batches of 1000, each batch dropped after counting (what a streaming consumer keeps
is up to it; the data step itself must not grow). Target: peak RSS flat as the folder grows.
Generated text: invented names, 4–7 sentence paragraphs, a Q&A block every 12th paragraph,
5 MB files plus one 12 MB file (so the over-the-limit streaming path is part of it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Data"

SYLLABLES = ["vel", "mor", "quil", "hav", "em", "ber", "or", "rin", "tam", "sk", "dal", "low", "ska", "ra", "ost",
             "mere", "har", "wick", "bri", "ne", "lu", "men", "fast", "kel", "zo", "rath", "bra", "ia"]
NOUNS = ["harbour", "lighthouse", "engine", "festival", "market", "bridge", "river", "college", "council", "mill",
         "ferry", "lantern", "bell", "wheel", "salt works", "museum", "garden", "tower", "quay", "library"]
TEMPLATES = [
    "{A} was founded by {P} in {Y}.",
    "The {n} of {A} is known for its {n2} and its {n3}.",
    "{P} built the first {n} at {A} in {Y}, and it ran for {k} years.",
    "Every year in {M} the people of {A} hold a {n} festival with {k} lanterns.",
    "The {n} in {A} is {k} metres long and was rebuilt by {P}.",
    "Most visitors reach {A} by ferry, a journey of {k} minutes from {B}.",
    "{P} wrote that the {n} of {B} was the finest in the Sorrel Sea.",
    "In {Y} a storm destroyed the old {n} of {A}, and {P} designed a new one.",
]
MONTHS = ["January", "March", "June", "August", "September", "November"]


def _name(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def make_text(target_bytes: int, seed: int) -> str:
    """Deterministic prose with Q&A blocks, about ``target_bytes`` of UTF-8."""
    rng = random.Random(seed)
    places = [_name(rng, rng.choice((2, 3))) for _ in range(300)]
    people = [f"{_name(rng)} {_name(rng, 3)}" for _ in range(300)]
    out: list[str] = []
    size = 0
    paragraph_no = 0
    while size < target_bytes:
        paragraph_no += 1
        if paragraph_no % 12 == 0:
            place = rng.choice(places)
            block = (f"Question: Who founded {place} (record {paragraph_no})?\n"
                     f"Answer: {place} was founded by {rng.choice(people)} in {rng.randint(1600, 1950)}.\n\n"
                     f"Q: How long is the {rng.choice(NOUNS)} of {place}?\nA: It is {rng.randint(2, 900)} metres "
                     f"long.\n\n")
        else:
            sentences = []
            for _ in range(rng.randint(4, 7)):
                sentences.append(rng.choice(TEMPLATES).format(
                    A=rng.choice(places), B=rng.choice(places), P=rng.choice(people), Y=rng.randint(1600, 2020),
                    n=rng.choice(NOUNS), n2=rng.choice(NOUNS), n3=rng.choice(NOUNS), k=rng.randint(2, 2000),
                    M=rng.choice(MONTHS)))
            block = " ".join(sentences) + "\n\n"
        out.append(block)
        size += len(block)
    return "".join(out)


def build_folder(folder: Path, total_mb: float, file_mb: float = 5.0, seed: int = 0) -> None:
    """Write ``total_mb`` of text into ``folder``: one 12 MB file (when there is room) and ``file_mb`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    total = int(total_mb * 1024 * 1024)
    # Variety costs time to generate; a 5 MB base block varied per file keeps 1 GB quick to write.
    base = make_text(int(min(file_mb, total_mb) * 1024 * 1024), seed)
    written, index = 0, 0
    if total >= 24 * 1024 * 1024:
        big = make_text(12 * 1024 * 1024 + 4096, seed + 1)
        (folder / "big-file.txt").write_text(big, encoding="utf-8")
        written += len(big)
    while written < total:
        size = min(int(file_mb * 1024 * 1024), total - written)
        text = base[:size].replace("Sorrel Sea", f"Sorrel Sea {index}") if index else base[:size]
        (folder / f"part {index:04d} é.txt").write_text(text, encoding="utf-8")
        written += len(text.encode())
        index += 1


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.txt")) / 1024 / 1024


def embedded_tokenizer_dir() -> Path:
    from llmcustoms.models.manager import ModelManager

    return ModelManager().ensure_embedded()


# --------------------------------------------------------------------------- the timed pass


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the offline generator's workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed_pass(folder: Path, tokenizer_dir: Path) -> dict[str, float]:
    from transformers import AutoTokenizer

    from llmcustoms.data.examples import build_examples
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.data.split import split_examples
    from llmcustoms.data.tokenize import tokenize_examples

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    c0, t0 = _cpu_seconds(), time.perf_counter()
    report = validate_folder(folder)
    t1 = time.perf_counter()
    built = build_examples(report, qa="offline")
    t2 = time.perf_counter()
    train, held_out = split_examples(built.examples)
    stats: dict[str, int] = {}
    eval_stats: dict[str, int] = {}
    tokenize_examples(train, tokenizer, 512, stats=stats)
    tokenize_examples(held_out, tokenizer, 512, stats=eval_stats)
    t3, c3 = time.perf_counter(), _cpu_seconds()
    return {"validate_s": t1 - t0, "examples_s": t2 - t1, "tokenize_s": t3 - t2, "total_s": t3 - t0,
            "cpu_s": c3 - c0, "examples": len(built.examples), "chunks": built.counts["chunks"],
            "tokens": stats["tokens"] + eval_stats["tokens"], "mb": folder_mb(folder), "load": os.getloadavg()[0]}


# --------------------------------------------------------------------------- the streaming pass (a child process)


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: on Linux that survives exec, so a
    child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def streaming_child(folder: str, tokenizer_dir: str) -> None:
    """Stream ``folder`` through the data step, keeping nothing; print counts, times and peak RSS as JSON.

    ``tokenizer_dir`` '-' skips tokenizing (and importing transformers, so the RSS is the data step's own).
    """
    from llmcustoms.data.chunking import chunk_text
    from llmcustoms.data.documents import iter_documents
    from llmcustoms.data.qa_extract import extract_qa
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.data.types import Chunk, Example
    from llmcustoms.qa.offline import OfflineGenerator

    tokenizer = None
    if tokenizer_dir != "-":
        from transformers import AutoTokenizer

        from llmcustoms.data.tokenize import tokenize_examples

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    generator = OfflineGenerator(3)
    baseline_kb = _peak_rss_kb()
    start, cpu0 = time.perf_counter(), time.process_time()
    report = validate_folder(folder)
    validated = time.perf_counter()
    pending: list[Example] = []
    counts = {"documents": 0, "chunks": 0, "examples": 0, "tokens": 0}

    def flush() -> None:
        if tokenizer is not None:
            stats: dict[str, int] = {}
            tokenize_examples(pending, tokenizer, 512, stats=stats)
            counts["tokens"] += stats["tokens"]
        counts["examples"] += len(pending)
        pending.clear()

    for document in iter_documents(report):
        counts["documents"] += 1
        pairs, prose = extract_qa(document.text)
        pending.extend(Example(messages=[{"role": "user", "content": p.question},
                                         {"role": "assistant", "content": p.answer}], source="qa", kind="explicit")
                       for p in pairs)
        for index, piece in enumerate(chunk_text(prose)):
            counts["chunks"] += 1
            pending.extend(generator.examples_for(Chunk(text=piece, source=f"{document.relpath}:{index}")))
            if len(pending) >= 1000:
                flush()
    flush()
    end = time.perf_counter()
    peak_kb = _peak_rss_kb()
    print(json.dumps({"mb": report.total_bytes / 1024 / 1024, "files": report.usable_files,
                      "validate_s": validated - start, "total_s": end - start, "cpu_s": time.process_time() - cpu0,
                      "load": os.getloadavg()[0],
                      "baseline_rss_mb": baseline_kb / 1024, "peak_rss_mb": peak_kb / 1024, **counts}))


def streaming_pass(folder: Path, tokenizer_dir: Path | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), str(tokenizer_dir or "-")], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    return (f"{model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}")


def render(timed: list[dict], streamed: list[dict], command: str, tokenized: bool) -> str:
    lines = [
        SECTION, "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- command: `{command}`",
        "- timed pass: validate_folder + build_examples(qa='offline') + split + tokenize_examples "
        "(SmolLM2 tokenizer, max_seq_len 512); target ≤ 5 s for 10 MB on 2 cores",
        f"- streaming pass: validate + iter_documents + Q&A + chunk + offline examples"
        f"{' + tokenize in batches of 1000' if tokenized else ' (no tokenizing)'}, every example dropped after "
        "counting, one fresh process per size; target: peak RSS flat as the folder grows",
        "- cpu s: CPU seconds of the process (all threads) and its worker processes; the machine is shared, so wall time depends on the "
        "load average shown (2 cores: load above 2 means waiting for a core)",
        "",
        "| pass | folder MB | examples | tokens | validate s | total s (wall) | cpu s | load | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in timed:
        lines.append(f"| timed | {row['mb']:.1f} | {row['examples']:,} | {row['tokens']:,} | {row['validate_s']:.2f} "
                     f"| {row['total_s']:.2f} | {row['cpu_s']:.2f} | {row['load']:.1f} | – |")
    for row in streamed:
        lines.append(f"| streaming | {row['mb']:.1f} | {row['examples']:,} | {row['tokens'] or '–'} | "
                     f"{row['validate_s']:.2f} | {row['total_s']:.2f} | {row['cpu_s']:.2f} | {row['load']:.1f} | "
                     f"{row['peak_rss_mb']:.0f} |")
    if timed:
        totals = sorted(r["total_s"] for r in timed)
        lines += ["", f"data_10mb_seconds = {totals[len(totals) // 2]:.2f} (median of {len(totals)} runs in one "
                      "process; the first pays for importing `datasets`)"]
    if len(streamed) >= 2:
        growth = streamed[-1]["peak_rss_mb"] - streamed[0]["peak_rss_mb"]
        lines.append(f"data_stream_rss_growth_mb = {growth:.0f} (from {streamed[0]['mb']:.0f} MB to "
                     f"{streamed[-1]['mb']:.0f} MB of text)")
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    """Replace the '## Data' section of RESULTS.md (or append it), leaving every other section as it is."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"(?ms)^{re.escape(SECTION)}\n.*?(?=^## |\Z)")
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        streaming_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10, help="size of the timed folder (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    parser.add_argument("--stream-mb", type=float, nargs="*", default=[50, 200],
                        help="sizes of the streamed folders (default 50 200)")
    parser.add_argument("--large-mb", type=float, default=None, help="also stream a folder this large (e.g. 1024)")
    parser.add_argument("--stream-tokenize", action="store_true",
                        help="tokenize in the streaming pass too (slower; RSS then includes transformers)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--formats", action="store_true",
                        help="only measure document reading: PDF pages/s against pdftotext, MB/s for the other "
                             "formats (benchmarks/bench_formats.py; prints only)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.formats:
        from benchmarks.bench_formats import run as formats_run

        print("\n".join(formats_run()))
        return
    from llmcustoms.utils.logger import quiet_libraries

    quiet_libraries()  # the environment the CLI and the training worker run in (tokenizer threads included)

    tokenizer_dir = embedded_tokenizer_dir()
    work = Path(tempfile.mkdtemp(prefix="llmcustoms-bench-data-"))
    try:
        small = work / f"data-{args.mb:g}mb"
        build_folder(small, args.mb)
        timed = []
        for repeat in range(args.repeats):
            row = timed_pass(small, tokenizer_dir)
            timed.append(row)
            print(f"timed {row['mb']:.1f} MB run {repeat + 1}: {row['total_s']:.2f} s wall, {row['cpu_s']:.2f} s cpu, "
                  f"load {row['load']:.1f} (validate {row['validate_s']:.2f}, "
                  f"examples {row['examples_s']:.2f}, tokenize {row['tokenize_s']:.2f}; {row['examples']:,} examples)",
                  flush=True)
        sizes = list(args.stream_mb) + ([args.large_mb] if args.large_mb else [])
        streamed = []
        for size in sizes:
            folder = work / f"stream-{size:g}mb"
            t = time.perf_counter()
            build_folder(folder, size)
            print(f"wrote {folder_mb(folder):.0f} MB in {time.perf_counter() - t:.1f} s", flush=True)
            row = streaming_pass(folder, tokenizer_dir if args.stream_tokenize else None)
            streamed.append(row)
            print(f"streamed {row['mb']:.0f} MB: {row['total_s']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB "
                  f"(after imports {row['baseline_rss_mb']:.0f} MB)", flush=True)
            if not args.keep:
                shutil.rmtree(folder)
        command = "python benchmarks/bench_data.py " + " ".join(sys.argv[1:])
        section = render(timed, streamed, command.strip(), args.stream_tokenize)
        print()
        print(section)
        if not args.no_write:
            write_section(section)
            print(f"updated {RESULTS}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
