"""Knowledge benchmark: does a default run make the embedded model know the user's documents?

For each folder: ``llmcustoms train FOLDER`` with the defaults (embedded SmolLM2-135M, offline examples,
quality preset) timed from the command line, then ``llmcustoms eval RUN --json`` (the product's own
score: base closed-book, tuned closed-book, base open-book, on facts held out by the run). Two checks
that do not trust the product's own code:

- **plain PEFT**: the base model and the adapter loaded the plain way (``PeftModel.from_pretrained``),
  each held-out question asked one at a time with ``generate``; its tuned answers scored with the same
  rule must agree with ``llmcustoms eval``;
- **independent questions**: questions written by hand, without the tool's question generator
  (``benchmarks/knowledge_data/questions_*.jsonl``), asked of base, tuned and open book (the source file
  in the prompt). These facts were trained on in other words, so this is "knows the documents", not the
  held-out score.

``--ablations`` trains examples/data again with one part taken away each time, at the default run's
number of steps (so the machine's load cannot change the comparison): topic-level examples instead of
fact-level ones, one phrasing per fact, no plain text, the old fixed 30 steps, the last adapter instead
of the best one. Writes the "## Knowledge" section of benchmarks/RESULTS.md.

    python benchmarks/bench_knowledge.py [--ablations] [--folders A,B]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, command_line, load_average, machine, now, table, write_section

DEFAULT_FOLDERS = ["examples/data", "benchmarks/knowledge_data/marrowfen"]
QUESTIONS = {"examples/data": "benchmarks/knowledge_data/questions_examples_data.jsonl",
             "benchmarks/knowledge_data/marrowfen": "benchmarks/knowledge_data/questions_marrowfen.jsonl"}
TARGETS = {"tuned": 0.70, "base": 0.10, "wall_s": 15 * 60}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``llmcustoms ARGS`` in a child process (the product as a user runs it)."""
    exe = Path(sys.executable).with_name("llmcustoms")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=False)


def train_and_eval(folder: str, out: Path, env: dict[str, str], extra: list[str] | None = None) -> dict:
    """Train with the defaults, then the product's own eval; wall times of both."""
    started = time.perf_counter()
    done = cli("train", folder, "--model", "smollm2-135m", "--qa", "offline", "--output-dir", str(out), "--json",
               *(extra or []), env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"train failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    run_dir = summary["run_dir"]
    started = time.perf_counter()
    evaluated = cli("eval", run_dir, "--json", env=env)
    eval_wall = time.perf_counter() - started
    if evaluated.returncode != 0:
        raise SystemExit(f"eval failed: {evaluated.stderr[-2000:]}")
    report = json.loads(evaluated.stdout)
    run = json.loads((Path(run_dir) / "run.json").read_text())
    return {"folder": folder, "run_dir": run_dir, "wall_s": wall, "eval_wall_s": eval_wall, "report": report,
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


def independent(folder: str, run: dict) -> dict | None:
    """Hand-written questions: base, tuned and open book (the source file as the passage)."""
    from llmcustoms.evaluation.scoring import is_correct

    path = ROOT / QUESTIONS.get(folder, "")
    if not QUESTIONS.get(folder) or not path.is_file():
        return None
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    contexts = [(ROOT / folder / item["source"]).read_text(encoding="utf-8") for item in items]
    answers = plain_peft_answers(run, [i["question"] for i in items], contexts)
    scores = {c: sum(is_correct(a, i["key"]) for a, i in zip(said, items, strict=True)) / len(items)
              for c, said in answers.items()}
    rows = [{"question": i["question"], "key": i["key"], **{c: answers[c][n] for c in answers}}
            for n, i in enumerate(items)]
    return {"questions": len(items), **scores, "rows": rows}


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", default=",".join(DEFAULT_FOLDERS))
    parser.add_argument("--ablations", action="store_true", help="also train examples/data without each part")
    parser.add_argument("--ablation-steps", type=int, default=70, help="steps of each ablation run (default 70)")
    parser.add_argument("--ablation-watch", action="store_true", help="also the run without best-adapter choice")
    parser.add_argument("--ablation-old-budget", action="store_true", help="also the old fixed 30-step run")
    parser.add_argument("--skip-main", metavar="RESULTS_JSON",
                        help="reuse the folders' results from an earlier run's results.json (ablations only)")
    args = parser.parse_args()
    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="bench-knowledge-"))
    env = {**os.environ, "LLMCUSTOMS_HOME": os.environ.get("LLMCUSTOMS_HOME", str(Path.home() / ".llmcustoms"))}
    when, where, load_before = now(), machine(), load_average()

    results = json.loads(Path(args.skip_main).read_text()) if args.skip_main else []
    for folder in ([] if args.skip_main else args.folders.split(",")):
        print(f"training on {folder} …", flush=True)
        result = train_and_eval(folder, work / "runs", env)
        result["agreement"], result["plain_correct"] = agreement(result)
        result["independent"] = independent(folder, result["run"])
        result["measured"] = f"{when} on {where}; load average before: {load_before}"
        results.append(result)
        r = result["report"]
        print(f"  {folder}: base {pct(r['base'])}, tuned {pct(r['tuned'])}, open book {pct(r['open_book'])} on "
              f"{r['questions']} held-out; wall {result['wall_s']:.0f} s; plain-PEFT agreement "
              f"{pct(result['agreement'])}", flush=True)

    main_rows = []
    for result in results:
        r, run = result["report"], result["run"]
        unseen = [row for row in r["rows"] if row["trained_phrasings"] == 0]
        main_rows.append([result["folder"], r["questions"], pct(r["base"]), pct(r["tuned"]), pct(r["open_book"]),
                          f"{sum(x['tuned_correct'] for x in unseen)}/{len(unseen)}",
                          f"{run.get('steps')} ({_passes(run)} passes)", run.get("best_step"),
                          f"{result['wall_s'] / 60:.1f} min", pct(result["agreement"])])
    ind_rows = [[res["folder"], res["independent"]["questions"], pct(res["independent"].get("base")),
                 pct(res["independent"].get("tuned")), pct(res["independent"].get("open_book"))]
                for res in results if res.get("independent")]

    ablation_rows = []
    if args.ablations:
        default = next(r for r in results if r["folder"] == "examples/data")
        steps = str(args.ablation_steps)
        variants = [(f"full recipe, budget from the data ({default['run']['steps']} steps, the default run)", None,
                     []),
                    (f"full recipe, {steps} steps", "", ["--max-steps", steps]),
                    ("topic-level offline examples (before this issue)", "topic_examples", ["--max-steps", steps]),
                    ("one phrasing per fact", "one_phrasing", ["--max-steps", steps]),
                    ("no plain-text passages", "no_passages", ["--max-steps", steps])]
        if args.ablation_old_budget:
            variants.append(("old fixed budget: 30 steps (full recipe)", "", ["--max-steps", "30"]))
        if args.ablation_watch:
            variants.append(("last adapter, no best-checkpoint choice", "no_watch", ["--max-steps", steps]))
        for label, ablation, extra in variants:
            if ablation is None:
                r = default["report"]
                ablation_rows.append([label, default["run"]["steps"], pct(r["base"]), pct(r["tuned"])])
                continue
            print(f"ablation: {label} …", flush=True)
            env_a = dict(env)
            if ablation:
                env_a["LLMCUSTOMS_ABLATION"] = ablation
            result = train_and_eval("examples/data", work / "ablations", env_a, extra)
            r = result["report"]
            ablation_rows.append([label, result["run"]["steps"], pct(r["base"]), pct(r["tuned"])])
            print(f"  tuned {pct(r['tuned'])}", flush=True)

    default = results[0]
    text = [f"Measured {default.get('measured') or when + ' on ' + where}.",
            f"Command: `{command_line()}`.",
            "",
            "Held-out facts: for each, one phrasing of its question is never trained on and is asked after training "
            "(closed book); a tenth of them get no training question at all (\"unseen\": only the plain text was "
            "trained on). Correct = at least 60 % of the key span's words (the number, date or name) among the "
            "answer's first 60 words, after normalisation (`llmcustoms/evaluation/scoring.py`). Open book = the "
            "base model with the passage around the fact in its prompt.",
            "",
            table(["folder", "held-out", "base", "tuned", "open book", "unseen right", "steps", "best step",
                   "train wall", "plain PEFT agrees"], main_rows),
            "",
            f"Targets (examples/data, defaults, 2 CPU cores): tuned ≥ 70 % → **{pct(default['report']['tuned'])}** "
            f"({'reached' if default['report']['tuned'] >= TARGETS['tuned'] else 'NOT reached'}); base ≤ 10 % → "
            f"**{pct(default['report']['base'])}**; wall ≤ 15 min → **{default['wall_s'] / 60:.1f} min** "
            f"({'reached' if default['wall_s'] <= TARGETS['wall_s'] else 'NOT reached'}; `llmcustoms train` from start "
            f"to exit, model load and the score included).",
            "",
            "`plain PEFT agrees`: the adapter loaded with `PeftModel.from_pretrained` and asked one question at a time; "
            "the share of held-out questions it gets right or wrong exactly as `llmcustoms eval` scored them."]
    if ind_rows:
        text += ["", "Independent questions (written by hand from the documents, not by the tool; their facts were "
                 "trained on in other words, so this measures knowing the documents, not the held-out split; open "
                 "book = the whole source file in the prompt):", "",
                 table(["folder", "questions", "base", "tuned", "open book"], ind_rows)]
    if ablation_rows:
        text += ["", f"Ablations measured {when} (load average before: {load_before}).",
                 "", f"Ablations on examples/data (each a full run of `llmcustoms train` with one part taken away, "
                 f"at {args.ablation_steps} steps so each costs a few minutes; compare with the full recipe at the "
                 f"same steps; `llmcustoms eval` scores each):",
                 "", table(["training data / budget", "steps", "base", "tuned"], ablation_rows)]
    write_section("## Knowledge", "\n".join(text))
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(text))
    print(f"\nraw results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
