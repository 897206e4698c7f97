"""Knowledge benchmark: does a default run make the embedded model know the user's documents, and does
the score it shows say honestly how well?

For each folder, ``--runs`` times (3 by default: one run's spread is 10–20 points): ``llmcustoms train
FOLDER`` with the defaults (embedded SmolLM2-135M, offline examples, quality preset) timed from the command
line, then ``llmcustoms eval RUN --questions FILE --json``: the product's own score (base closed book,
tuned closed book, base open book, on facts held out by the run) beside **questions written by a person**
from the same documents (``benchmarks/knowledge_data/questions_*.jsonl``, never trained on; open book =
the question's source file in the prompt), and what the tuned model kept of the base model's general
knowledge (stored by the run). The gap between the tool's score and the person's is the number issue 22
asks to bring within 10 points.

``--plain-peft`` adds a check that does not trust the product's code: the adapter loaded the plain way
(``PeftModel.from_pretrained``), each held-out question asked one at a time; its answers scored with the
same rule must agree with ``llmcustoms eval``.

``--ablations`` trains examples/data again with one part taken away each time (see ``--help``).
Writes the "## Knowledge" section of benchmarks/RESULTS.md and every run's numbers to
``benchmarks/knowledge_runs.json`` (updated after each run, so a stopped benchmark keeps what it measured).

    python benchmarks/bench_knowledge.py [--runs 3] [--folders A,B] [--plain-peft] [--ablations]

A mixed-format copy of a folder (``scripts/make_mixed_folder.py``), e.g. ``--folders
benchmarks/knowledge_data/marrowfen_mixed``, is asked its .txt folder's questions (issue 23, point 7).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, command_line, load_average, machine, now, table, write_section

DATA = "benchmarks/knowledge_data"
DEFAULT_FOLDERS = ["examples/data", f"{DATA}/marrowfen", f"{DATA}/tessel_manual", f"{DATA}/harrow_minutes"]
QUESTIONS = {"examples/data": f"{DATA}/questions_examples_data.jsonl",
             f"{DATA}/marrowfen": f"{DATA}/questions_marrowfen.jsonl",
             f"{DATA}/tessel_manual": f"{DATA}/questions_tessel_manual.jsonl",
             f"{DATA}/harrow_minutes": f"{DATA}/questions_harrow_minutes.jsonl"}
KINDS = {"examples/data": "gazetteer", f"{DATA}/marrowfen": "gazetteer + FAQ",
         f"{DATA}/tessel_manual": "technical how-to", f"{DATA}/harrow_minutes": "minutes",
         f"{DATA}/marrowfen_mixed": "gazetteer + FAQ as PDF, Word, web page, Markdown, EPUB"}
#: Mixed-format copies (scripts/make_mixed_folder.py, optional: not in --folders by default) and the .txt
#: folder each was made from, whose person-written questions they are asked.
MIXED = {f"{DATA}/marrowfen_mixed": f"{DATA}/marrowfen"}
RUNS_FILE = ROOT / "benchmarks" / "knowledge_runs.json"
#: Issue 22's goals: the tool's score within 10 points of a person's; a person's questions ≥ 60 % and ≥ open
#: book, spread ≤ 10 points; ≥ 95 % of general knowledge kept; general perplexity up ≤ 10 %; wall ≤ 15 min.
GOALS = {"gap": 0.10, "person": 0.60, "spread": 0.10, "kept": 0.95, "perplexity": 0.10, "wall_s": 15 * 60}


def questions_for(folder: str, work: Path) -> str | None:
    """The person-written questions file for ``folder`` (None when it has none).

    A mixed-format copy gets its .txt folder's questions, written to ``work`` with each ``source`` made the
    absolute path of the .txt file: open book then puts the same text in the prompt as for the .txt folder
    (the eval reads a source as text, and a PDF's or Word file's bytes are not its text).
    """
    folder = os.path.normpath(folder)
    if folder not in MIXED:
        return QUESTIONS.get(folder)
    plain = MIXED[folder]
    lines = []
    for line in (ROOT / QUESTIONS[plain]).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if item.get("source"):
                item["source"] = str(ROOT / plain / item["source"])
            lines.append(json.dumps(item, ensure_ascii=False))
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"questions_{Path(folder).name}.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(target)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``llmcustoms ARGS`` in a child process (the product as a user runs it)."""
    exe = Path(sys.executable).with_name("llmcustoms")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=False)


def train_and_eval(folder: str, out: Path, env: dict[str, str], extra: list[str] | None = None,
                   questions: str | None = None) -> dict:
    """Train with the defaults, then the product's own eval (with the person's questions); wall times of both."""
    started = time.perf_counter()
    done = cli("train", folder, "--model", "smollm2-135m", "--qa", "offline", "--output-dir", str(out), "--json",
               *(extra or []), env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"train failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    run_dir = summary["run_dir"]
    started = time.perf_counter()
    # The general check ran at the end of training (run.json's "general"): not asked twice.
    evaluated = cli("eval", run_dir, "--json", "--no-general", *(["--questions", questions] if questions else []),
                    env=env)
    eval_wall = time.perf_counter() - started
    if evaluated.returncode != 0:
        raise SystemExit(f"eval failed: {evaluated.stderr[-2000:]}")
    report = json.loads(evaluated.stdout)
    run = json.loads((Path(run_dir) / "run.json").read_text())
    return {"folder": folder, "run_dir": run_dir, "wall_s": wall, "eval_wall_s": eval_wall, "report": report,
            "person": report.get("person_questions"), "general": run.get("general") or {},
            "in_run": run.get("knowledge") or {}, "run": run}


def plain_peft_answers(run: dict, questions: list[str], contexts: list[str] | None = None) -> dict[str, list[str]]:
    """Base and tuned answers from a plain transformers + PEFT load, one question at a time."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run["adapter_path"])
    base = AutoModelForCausalLM.from_pretrained(run["model_path"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, run["adapter_path"]).eval()

    def answer(prompt: str, tuned: bool) -> str:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            if tuned:
                out = model.generate(**ids, max_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            else:
                with model.disable_adapter():
                    out = model.generate(**ids, max_new_tokens=32, do_sample=False,
                                         pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    result = {"tuned": [answer(q, True) for q in questions], "base": [answer(q, False) for q in questions]}
    if contexts is not None:
        result["open_book"] = [answer(f"Answer the question using this passage.\n\nPassage: {c}\n\nQuestion: {q}",
                                      False) for q, c in zip(questions, contexts, strict=True)]
    return result


def agreement(result: dict) -> tuple[float, int]:
    """Share of held-out questions where the plain PEFT load's tuned answer is scored like eval's."""
    from llmcustoms.evaluation.scoring import is_correct

    rows = result["report"]["rows"]
    plain = plain_peft_answers(result["run"], [r["question"] for r in rows])
    same = sum(is_correct(p, r["span"]) == bool(r["tuned_correct"]) for p, r in zip(plain["tuned"], rows, strict=True))
    plain_score = sum(is_correct(p, r["span"]) for p, r in zip(plain["tuned"], rows, strict=True)) / max(1, len(rows))
    return same / max(1, len(rows)), round(plain_score * len(rows))


def _passes(run: dict) -> str:
    """Passes over the training rows the run really made (the budget's plan scaled to the steps taken)."""
    budget = run.get("budget") or {}
    if not budget.get("steps") or not budget.get("epochs"):
        return "?"
    return f"{run['steps'] * budget['epochs'] / budget['steps']:.1f}"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def spread(values: list[float]) -> str:
    """'40 % (33–47)': the median and the range of repeated runs."""
    if not values:
        return "–"
    if len(values) == 1:
        return pct(values[0])
    return f"{pct(statistics.median(values))} ({100 * min(values):.0f}–{100 * max(values):.0f})"


def values(runs: list[dict], get) -> list[float]:
    """The runs' values of ``get(run)`` that are numbers."""
    out = []
    for run in runs:
        try:
            value = get(run)
        except (KeyError, TypeError):
            continue
        if isinstance(value, (int, float)):
            out.append(float(value))
    return out


def folder_rows(results: list[dict]) -> tuple[list[list], list[str]]:
    """One table row per folder (medians and ranges over its runs) and the goal lines."""
    rows, goals = [], []
    for folder in dict.fromkeys(r["folder"] for r in results):
        runs = [r for r in results if r["folder"] == folder]
        tool = values(runs, lambda r: r["report"]["tuned"])
        person = values(runs, lambda r: r["person"]["tuned"])
        person_book = values(runs, lambda r: r["person"]["open_book"])
        gaps = values(runs, lambda r: r["report"]["tuned"] - r["person"]["tuned"])
        kept = values(runs, lambda r: r["general"]["general_kept"])
        ppl = values(runs, lambda r: r["general"]["general_perplexity_change"])
        walls = values(runs, lambda r: r["wall_s"])
        rows.append([folder.replace(f"{DATA}/", ""), KINDS.get(folder, ""), len(runs),
                     spread(values(runs, lambda r: r["report"]["base"])), spread(tool),
                     spread(values(runs, lambda r: r["report"]["open_book"])),
                     spread(values(runs, lambda r: r["person"]["base"])), spread(person), spread(person_book),
                     f"{100 * statistics.median(gaps):+.0f}" if gaps else "–", spread(kept),
                     f"{100 * statistics.median(ppl):+.1f} %" if ppl else "–",
                     "/".join(str(r["run"].get("steps")) for r in runs),
                     f"{statistics.median(walls) / 60:.1f} min" if walls else "–"])
        if person:
            med = statistics.median(person)
            checks = [f"gap {100 * statistics.median(gaps):+.0f} points ({'within' if abs(statistics.median(gaps)) <= GOALS['gap'] else 'NOT within'} 10)" if gaps else "gap –",
                      f"person-written tuned {pct(med)} ({'≥' if med >= GOALS['person'] else 'NOT ≥'} 60 %)",
                      f"{'≥' if person_book and med >= statistics.median(person_book) else 'NOT ≥'} open book "
                      f"{pct(statistics.median(person_book)) if person_book else '–'}",
                      f"spread {100 * (max(person) - min(person)):.0f} points over {len(person)} run(s)"
                      + ("" if len(person) >= 3 else " (3 runs needed to judge the spread)"),
                      f"kept {spread(kept)} ({'≥' if kept and statistics.median(kept) >= GOALS['kept'] else 'NOT ≥'} 95 %)",
                      f"perplexity {100 * statistics.median(ppl):+.1f} % ({'≤' if ppl and statistics.median(ppl) <= GOALS['perplexity'] else 'NOT ≤'} +10 %)" if ppl else "perplexity –"]
            goals.append(f"- {folder}: " + "; ".join(checks) + ".")
    return rows, goals


def support_of(result: dict) -> dict | None:
    """How well the chat's support mark (issue 24) agrees with right/wrong on the person-written questions,
    for the tuned answers and the base model's (the mark is computed from question and answer, never the key)."""
    from support_agreement import support_agreement

    person = result.get("person")
    if not person:
        return None
    out = {}
    for side in ("tuned", "base"):
        items = [(row["question"], row[side], bool(row[f"{side}_correct"])) for row in person["rows"]]
        found = support_agreement(result["run_dir"], items)
        out[side] = {k: getattr(found, k) for k in ("answers", "agreement", "precision", "recall",
                                                    "wrong_but_supported", "supported", "right")}
    return out


def support_rows(results: list[dict]) -> list[list]:
    """One row per folder and side: agreement, precision, recall, wrong-but-supported (medians over runs)."""
    rows = []
    for folder in dict.fromkeys(r["folder"] for r in results):
        runs = [r for r in results if r["folder"] == folder and r.get("support")]
        for side in ("tuned", "base"):
            got = {k: values(runs, lambda r, k=k, side=side: r["support"][side][k])
                   for k in ("agreement", "precision", "recall", "wrong_but_supported")}
            if got["agreement"]:
                rows.append([folder.replace(f"{DATA}/", ""), side, len(runs),
                             *(spread(got[k]) for k in ("agreement", "precision", "recall", "wrong_but_supported"))])
    return rows


def save_runs(results: list[dict]) -> None:
    """Every run's numbers (without the bulky run.json) to benchmarks/knowledge_runs.json."""
    slim = [{k: v for k, v in r.items() if k not in ("run", "in_run")} | {"steps": r["run"].get("steps"),
                                                                        "best_step": r["run"].get("best_step")}
            for r in results]
    RUNS_FILE.write_text(json.dumps(slim, indent=1, default=str) + "\n")


def compare_recipes(labelled: list[tuple[str, Path]]) -> str:
    """The '## Knowledge: recipes compared' section: per folder, each recipe's stored runs side by side
    (``--compare LABEL=RUNS_JSON ...``; medians over that recipe's runs, range in brackets)."""
    rows = []
    for label, path in labelled:
        runs = json.loads(path.read_text())
        for folder in dict.fromkeys(r["folder"] for r in runs):
            mine = [r for r in runs if r["folder"] == folder]
            rows.append([folder.replace(f"{DATA}/", ""), label, len(mine),
                         spread(values(mine, lambda r: r["report"]["tuned"])),
                         spread(values(mine, lambda r: r["person"]["tuned"])),
                         spread(values(mine, lambda r: r["person"]["open_book"])),
                         spread(values(mine, lambda r: r["general"]["general_kept"])),
                         "/".join(f"{100 * r['general']['general_perplexity_change']:+.0f} %" for r in mine),
                         "/".join(str(r.get("steps")) for r in mine),
                         "/".join(f"{r['wall_s'] / 60:.1f}" for r in mine)])
    rows.sort(key=lambda row: (row[0], [label for label, _ in labelled].index(row[1])))
    files = ", ".join(f"{label}: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`"
                      for label, path in labelled)
    return "\n".join([
        f"Written {now()} from stored runs ({files}); each run a default `llmcustoms train` on 2 CPU cores, alone. "
        "Tool = the product's held-out score (tuned), person = the person-written questions (tuned, then the "
        "base model open book), kept = general knowledge kept, ppl = change in general perplexity, wall in min.",
        "", table(["folder", "recipe", "runs", "tool tuned", "person tuned", "person open book", "kept", "ppl",
                   "steps", "wall"], rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", default=",".join(DEFAULT_FOLDERS))
    parser.add_argument("--runs", type=int, default=3, help="runs per folder (default 3)")
    parser.add_argument("--plain-peft", action="store_true", help="also check eval against a plain PEFT load")
    parser.add_argument("--ablations", action="store_true", help="also train examples/data without each part")
    parser.add_argument("--ablation-steps", type=int, default=70, help="steps of each ablation run (default 70)")
    parser.add_argument("--ablation-watch", action="store_true", help="also the run without best-adapter choice")
    parser.add_argument("--ablation-old-budget", action="store_true", help="also the old fixed 30-step run")
    parser.add_argument("--append", action="store_true",
                        help="add these runs to those already in knowledge_runs.json (same recipe) and tabulate all")
    parser.add_argument("--skip-main", metavar="RUNS_JSON",
                        help="reuse the runs of an earlier knowledge_runs.json (write the table again)")
    parser.add_argument("--compare", nargs="+", metavar="LABEL=RUNS_JSON",
                        help="only write the recipes-compared section from stored runs files, and stop")
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.compare:
        labelled = [(item.split("=", 1)[0], (ROOT / item.split("=", 1)[1]).resolve()) for item in args.compare]
        body = compare_recipes(labelled)
        write_section("## Knowledge: recipes compared", body)
        print(body)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-knowledge-"))
    env = {**os.environ, "LLMCUSTOMS_HOME": os.environ.get("LLMCUSTOMS_HOME", str(Path.home() / ".llmcustoms"))}
    when, where, load_before = now(), machine(), load_average()

    results = []
    if args.skip_main:
        results = [r | {"run": {"steps": r.get("steps"), "best_step": r.get("best_step")}}
                   for r in json.loads(Path(args.skip_main).read_text())]
    elif args.append and RUNS_FILE.is_file():
        results = [r | {"run": {"steps": r.get("steps"), "best_step": r.get("best_step")}}
                   for r in json.loads(RUNS_FILE.read_text())]
        print(f"appending to {len(results)} runs already in {RUNS_FILE.name}", flush=True)
    for repeat in range(0 if args.skip_main else args.runs):
        for folder in args.folders.split(","):
            print(f"run {repeat + 1}/{args.runs}: training on {folder} …", flush=True)
            result = train_and_eval(folder, work / "runs", env, questions=questions_for(folder, work))
            if args.plain_peft:
                result["agreement"], result["plain_correct"] = agreement(result)
            result["measured"] = f"{now()} on {where}; load average before: {load_average()}"
            result["support"] = support_of(result)
            results.append(result)
            r, person, general = result["report"], result["person"] or {}, result["general"]
            print(f"  {folder}: tool base {pct(r['base'])}, tuned {pct(r['tuned'])}, open book {pct(r['open_book'])} "
                  f"on {r['questions']} held-out; person-written base {pct(person.get('base'))}, tuned "
                  f"{pct(person.get('tuned'))}, open book {pct(person.get('open_book'))}; kept "
                  f"{pct(general.get('general_kept'))}; steps {result['run'].get('steps')}; wall "
                  f"{result['wall_s']:.0f} s", flush=True)
            save_runs(results)

    rows, goals = folder_rows(results)
    text = [f"Measured {when} on {where}; load average before: {load_before}.",
            f"Command: `{command_line()}`. Every run: `llmcustoms train FOLDER --model smollm2-135m --qa offline` "
            "(the defaults: quality preset, CPU budget from the data, capped at 10 min), then `llmcustoms eval RUN "
            "--questions questions_*.jsonl`. Each run's numbers: `benchmarks/knowledge_runs.json`.",
            "",
            "**Tool** = the product's own held-out questions (a question family never trained on for that fact, asked "
            "in its short form); **person** = the questions written by a person from the same documents "
            "(`benchmarks/knowledge_data/`, never trained on; open book = the source file in the prompt). Correct = at "
            "least 60 % of the key's words among the answer's first 60 words, after normalisation "
            "(`llmcustoms/evaluation/scoring.py`). **Gap** = tool tuned − person tuned, in points. **Kept** = of the "
            "shipped general questions the base model got right, the share the tuned model still gets right; "
            "**ppl** = the change in perplexity on the shipped general text. Medians over the runs, range in brackets.",
            "",
            table(["folder", "kind", "runs", "tool base", "tool tuned", "tool open book", "person base",
                   "person tuned", "person open book", "gap", "kept", "ppl", "steps", "train wall"], rows),
            "",
            "Goals (issue 22):", *goals]
    supports = support_rows(results)
    if supports:
        text += ["", "The chat's support mark (issue 24) on the same person-written questions: does \"a passage of your "
                 "documents supports this\" agree with right/wrong? Precision = of the answers marked supported, the "
                 "share right; recall = of the right answers, the share marked supported; wrong-but-supported = of "
                 "the wrong answers, the share marked supported (the costly mistake; goal ≤ 10 %, agreement ≥ 80 %).",
                 "", table(["folder", "answers of", "runs", "agreement", "precision", "recall",
                            "wrong but supported"], supports)]
    if args.plain_peft:
        agree = [f"{r['folder']}: {pct(r.get('agreement'))}" for r in results if r.get("agreement") is not None]
        text += ["", "Plain PEFT load agrees with `llmcustoms eval` on: " + ", ".join(agree) + "."]
    ablation_rows = []
    if args.ablations:
        steps = str(args.ablation_steps)
        variants = [(f"full recipe, {steps} steps", "", ["--max-steps", steps]),
                    ("topic-level offline examples", "topic_examples", ["--max-steps", steps]),
                    ("one phrasing per fact", "one_phrasing", ["--max-steps", steps]),
                    ("no plain-text passages", "no_passages", ["--max-steps", steps])]
        if args.ablation_old_budget:
            variants.append(("old fixed budget: 30 steps (full recipe)", "", ["--max-steps", "30"]))
        if args.ablation_watch:
            variants.append(("last adapter, no best-checkpoint choice", "no_watch", ["--max-steps", steps]))
        for label, ablation, extra in variants:
            print(f"ablation: {label} …", flush=True)
            env_a = dict(env)
            if ablation:
                env_a["LLMCUSTOMS_ABLATION"] = ablation
            result = train_and_eval("examples/data", work / "ablations", env_a, extra,
                                    questions=QUESTIONS["examples/data"])
            r, person = result["report"], result["person"] or {}
            ablation_rows.append([label, result["run"]["steps"], pct(r["base"]), pct(r["tuned"]),
                                  pct(person.get("tuned"))])
            print(f"  tuned {pct(r['tuned'])}, person-written {pct(person.get('tuned'))}", flush=True)
        text += ["", f"Ablations on examples/data, measured {when} (each a full run with one part taken away, at "
                 f"{steps} steps):", "",
                 table(["training data / budget", "steps", "tool base", "tool tuned", "person tuned"], ablation_rows)]
    write_section("## Knowledge", "\n".join(text))
    print("\n".join(text))
    print(f"\nruns: {RUNS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
