"""The ``llmcustoms`` command: hardware | models | validate | prepare | train | chat | runs | attach |
stop | resume | export.

Every failure a user can cause ends with one sentence on stderr and exit code 2 (usage/input)
or 1 (runtime); ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcustoms.errors import InputError, LLMCustomsError

if TYPE_CHECKING:
    from llmcustoms.utils.config import Settings

EXIT_INTERRUPTED = 130


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _mb(value: float | int | None) -> str:
    return "?" if value is None else f"{value / 1024:.1f} GB"


# -- hardware ------------------------------------------------------------------------------------
def cmd_hardware(args: argparse.Namespace) -> int:
    from llmcustoms.core.planner import make_plan
    from llmcustoms.hardware.detector import HardwareDetector

    settings = _settings(args)
    info = HardwareDetector(env_config=settings).detect()
    # preset None: DEFAULT_PRESET, else quality
    plan = make_plan(args.model, args.preset, hardware=info, env_config=settings)
    if args.json:
        _print_json({"hardware": info, "recommendation": plan.to_dict()})
        return 0
    print(f"CPU: {info.get('cpu_count')} cores · RAM {_mb(info.get('ram_available_mb'))} free of "
          f"{_mb(info.get('ram_total_mb'))} · disk free in the cache: {_mb(info.get('disk_free_mb'))}")
    print(f"torch {info.get('torch_version')} · CUDA {'available' if info.get('cuda_available') else 'not available'}"
          + (f" (build {info['cuda_version']})" if info.get("cuda_version") else ""))
    for gpu in info.get("gpus", []):
        print(f"GPU {gpu.get('index')}: {gpu.get('name')} · {_mb(gpu.get('free_mb'))} free of {_mb(gpu.get('total_mb'))}")
    for warning in plan.warnings:  # the hardware's warnings and the plan's, each once
        print(f"warning: {warning}")
    print(f"\nRecommended: {plan.model} with the {plan.preset} preset — {plan.reason}")
    if not plan.available:
        print(f"Not available now: {plan.availability}"
              + (f" Use it with --model {plan.offline_alternative}." if plan.offline_alternative else ""))
    estimate = plan.config.get("memory_estimate_mb") or {}
    if isinstance(estimate, dict) and estimate:
        parts = ", ".join(f"{k[:-3].replace('_', ' ')} {v:.0f} MB" for k, v in estimate.items()
                          if k.endswith("_mb") and k not in ("total_mb", "allocator_peak_mb") and v)
        print(f"Memory estimate: {estimate.get('total_mb', 0):.0f} MB ({parts})")
    return 0


# -- models --------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from llmcustoms.models.manager import ModelManager

    models = ModelManager().list_models()
    if args.json:
        _print_json(models)
        return 0
    print(f"{'name':<15} {'params':>8}  {'cached':<7} source")
    for m in models:
        print(f"{m['name']:<15} {m['params_m']:>7.0f}M  {'yes' if m['cached'] else 'no':<7} "
              f"{m['hub_id']}{'  (' + m['note'] + ')' if m.get('note') else ''}")
    return 0


# -- validate / prepare --------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.training.dataset_check import folder_dataset_report

    report = validate_folder(args.dir, settings=_settings(args), on_progress=_slow_file_progress())
    # The dataset report (lengths, duplicates, leakage) of the examples prepare would build, offline;
    # lengths estimated: validate loads no model.
    dataset = folder_dataset_report(report, settings=_settings(args)) if report.ok and report.example_count \
        else None
    if args.json:
        _print_json({**report.to_dict(), "dataset": dataset.to_dict() if dataset is not None else None})
    else:
        for line in report.summary_lines() + (dataset.summary_lines() if dataset is not None else []):
            print(line)
    return 0 if report.ok else 2


def _slow_file_progress(every_s: float = 3.0) -> Any:
    """``on_progress(relpath, done, total)`` for validate: a line on stderr every ``every_s`` seconds while
    one file takes long (a 2,000-page PDF), so a long read is not mistaken for a hang."""
    import time

    state: dict[str, Any] = {"file": "", "start": 0.0, "said": 0.0}

    def on_progress(relpath: str, done: int, total: int) -> None:
        now = time.monotonic()
        if relpath != state["file"]:
            state.update(file=relpath, start=now, said=now)
            return
        if now - state["said"] >= every_s:
            state["said"] = now
            print(f"Reading '{relpath}': page {done:,} of {total:,} ({now - state['start']:.0f} s)…",
                  file=sys.stderr, flush=True)

    return on_progress


def _confirm_plan(plan: Any, assume_yes: bool) -> bool:
    print(plan.describe() if hasattr(plan, "describe") else str(plan), file=sys.stderr)
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise InputError("Sending text to the Q&A server needs confirmation: rerun with --yes.")
    try:
        return input("Send these chunks to the server? [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _settings(args: argparse.Namespace) -> Settings:
    """The settings ``main`` read for this command (read now for a command called without ``main``)."""
    from llmcustoms.utils.config import Settings

    settings = vars(args).get("settings")
    return settings if isinstance(settings, Settings) else Settings.load()


def cmd_prepare(args: argparse.Namespace) -> int:
    from llmcustoms.data.examples import build_examples
    from llmcustoms.data.jsonl import write_examples_jsonl
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.planning.presets import get_preset
    from llmcustoms.qa.progress import LiveLine

    report = validate_folder(args.dir, settings=_settings(args))
    report.raise_if_blocked()
    preset = args.preset or _settings(args).default_preset
    pairs = args.pairs or int(get_preset(preset).get("qa_pairs_per_chunk", 3))
    # A live line while a Q&A server works (it says how long the server has been silent); the sentence on
    # vanished files is not printed here: it is the error below, said once.
    line = LiveLine(sys.stderr)
    try:
        built = build_examples(report, qa=args.qa, pairs_per_chunk=pairs, settings=_settings(args),
                               confirm=lambda plan: _confirm_plan(plan, args.yes), progress=line.progress(),
                               on_message=lambda m: None if m == report.vanished_sentence() else line.message(m))
    finally:
        line.end()
    if built.missing:
        # Examples from part of the folder are not what was asked for: write nothing, name the files.
        from llmcustoms.errors import DataError

        raise DataError(f"{built.missing_message.rstrip('.')}; nothing was written — run prepare again once "
                        "the folder no longer changes.")
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        if out.is_dir():
            raise InputError(f"{out} is a folder: give --out a file name, e.g. {out / 'examples.jsonl'}.")
        if out.exists() and not args.force:
            raise InputError(f"{out} already exists: choose another --out or add --force.")
        write_examples_jsonl(built.examples, out)
        print(f"Wrote {len(built.examples)} examples to {out}", file=sys.stderr)
    # The dataset report: lengths against the preset's limit (estimated: prepare loads no model), duplicates,
    # and leakage of the questions a run with the default seed holds out.
    from llmcustoms.training.dataset_check import built_dataset_report, training_limit

    dataset = built_dataset_report(built, training_limit(preset, _settings(args))[0])
    if args.json:
        _print_json({"examples": len(built.examples), "qa_mode": built.qa_mode, "counts": built.counts,
                     "out": args.out, "dataset": dataset.to_dict()})
    else:
        if not args.out:
            for example in built.examples[:5]:
                print(f"Q: {example.prompt}\nA: {example.answer[:300]}\n")
            print(f"{len(built.examples)} examples ({built.qa_mode}).")
        for sentence in dataset.summary_lines():
            print(sentence, file=sys.stderr)
    return 0


# -- train ---------------------------------------------------------------------------------------
def _graceful_stop_signals(stop: Any) -> Any:
    """First Ctrl+C (or SIGTERM) stops training gracefully (a checkpoint and the adapter are saved);
    a second Ctrl+C interrupts at once. Returns a function that puts the old handlers back."""
    import signal

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping after this step (saving a checkpoint and the adapter); Ctrl+C again to abort.",
              file=sys.stderr, flush=True)

    for sig in previous:
        signal.signal(sig, handler)
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def _print_result(result: Any, as_json: bool) -> None:
    knowledge = result.run_dir.read().get("knowledge") or {}
    summary = {"run_dir": str(result.run_dir.path), "status": result.status, "steps": result.steps,
               "adapter_path": result.adapter_path, "eval_loss_before": result.eval_loss_before,
               "eval_loss_after": result.eval_loss_after,
               "knowledge": {k: knowledge.get(k) for k in ("questions", "base", "tuned", "open_book", "message")}}
    if as_json:
        _print_json(summary)
        return
    fmt = (lambda v: "?" if v is None else f"{v:.4f}")  # noqa: E731
    pct = (lambda v: "–" if v is None else f"{100 * v:.0f} %")  # noqa: E731
    print(f"\nHeld-out loss: before {fmt(result.eval_loss_before)} → after {fmt(result.eval_loss_after)}")
    if knowledge.get("tuned") is not None:
        print(f"Knowledge ({knowledge.get('questions')} held-out questions): base {pct(knowledge.get('base'))} → "
              f"tuned {pct(knowledge.get('tuned'))}; open book {pct(knowledge.get('open_book'))}. "
              f"Details: llmcustoms eval {result.run_dir.id} --verbose")
    elif knowledge.get("message"):
        print(f"Knowledge: {knowledge['message']}")
    print(f"Run: {result.run_dir.path}\nAdapter: {result.adapter_path}")
    print(f"Chat with it: llmcustoms chat {result.run_dir.path}")
    from llmcustoms.training.tracking import tensorboard_dir

    if tensorboard_dir(result.run_dir.path).is_dir():
        print(f"Watch it in TensorBoard: tensorboard --logdir {result.run_dir.path.parent}")


def _print_detached(run: Any, as_json: bool, verb: str) -> None:
    data = run.read()
    if as_json:
        _print_json({"run_dir": str(run.path), "id": run.id, "pid": data.get("pid"), "status": data.get("status")})
        return
    print(f"{verb} in the background (process {data.get('pid')}): {run.path}")
    print(f"Follow it:  llmcustoms attach {run.id}\nStop it:    llmcustoms stop {run.id}\n"
          f"Its log:    {run.log_path}")


def _ask_to_send(request: Any, assume_yes: bool) -> None:
    """Before a run starts (and before it detaches): show what would go to the Q&A server and ask.

    ``--yes`` consents; at a terminal the answer decides (no: the run stays offline); with no terminal
    and no ``--yes`` nothing is sent (the run builds offline examples and says how to allow sending).
    """
    from llmcustoms.training.prepare import generation_plan

    plan = generation_plan(request)
    if plan is None:
        return
    if getattr(plan, "to_send", None) == 0:  # every chunk is cached: nothing leaves this machine
        print(plan.describe(), file=sys.stderr)
        return
    if not assume_yes and not sys.stdin.isatty():
        request.qa = "offline"
        print(f"Not sending your text to {getattr(plan, 'name', 'the Q&A server')}: there is no terminal to ask "
              "and no --yes, so this run builds its examples offline. To allow sending, rerun with --yes; "
              "--qa offline stays offline without this note.", file=sys.stderr)
        return
    request.send_consent = _confirm_plan(plan, assume_yes)
    if not request.send_consent:
        request.qa = "offline"
        print("Not sending anything: this run builds its examples offline from your text.", file=sys.stderr)


def _check_model_now(model: str) -> None:
    """Refuse, before any run folder exists, a model that is damaged or cannot be downloaded now."""
    from llmcustoms.models.availability import model_availability

    if model == "auto":  # chosen by the hardware; a choice that can not be had falls back to the embedded one
        return
    availability = model_availability(model)
    if not availability.ok:
        hint = f"Use it with --model {availability.offline_alternative}." if availability.source == "offline" else ""
        raise availability.error(hint)


def cmd_train(args: argparse.Namespace) -> int:
    from llmcustoms.runs.rundir import check_runs_root
    from llmcustoms.training.request import TrainRequest
    from llmcustoms.training.tracking import resolve_report_to
    from llmcustoms.training.trainer import run_training
    from llmcustoms.utils.config import check_max_steps

    settings = _settings(args)
    preset = args.preset or settings.default_preset or "quality"
    model = args.model or settings.default_model or "auto"
    check_runs_root(args.output_dir, create=False)  # an unusable OUTPUT_DIR is said before any model loads
    _check_model_now(model)
    request = TrainRequest(data_path=args.dir, model=model, preset=preset,
                           max_steps=check_max_steps(args.max_steps),
                           output_dir=args.output_dir, qa=args.qa, seed=args.seed, save_steps=args.save_steps,
                           max_seq_len=args.max_seq_len, device="cpu" if args.cpu else None,
                           settings=settings,
                           # a tracker named but not installed: one sentence now, before any model loads
                           report_to=resolve_report_to(args.report_to or settings.report_to))
    _ask_to_send(request, args.yes)
    if args.num_processes and args.num_processes > 1:
        return _train_multiprocess(request, args)
    if args.fsdp:
        raise InputError("--fsdp shards a model across processes: use it with --num-processes N (N ≥ 2).")
    if args.detach:
        from llmcustoms.training.detach import start_detached

        _print_detached(start_detached(request), args.json, "Training")
        return 0
    def announce(run: Any) -> None:
        # First, so `llmcustoms attach/stop RUN` work from another SSH session while this one trains.
        if not args.json:
            print(f"Run {run.id}: {run.path}", file=sys.stderr, flush=True)

    return _run_in_foreground(lambda sink, stop: run_training(request, sink=sink, stop=stop, on_run=announce),
                              args.json)


def _run_in_foreground(train: Any, as_json: bool) -> int:
    """``train(sink, stop)`` with the progress bar, Ctrl+C as a graceful stop, and the result printed."""
    import threading

    from llmcustoms.runs.progress import ProgressPrinter

    printer = None if as_json else ProgressPrinter()
    stop = threading.Event()
    restore = _graceful_stop_signals(stop)
    try:
        result = train(printer, stop)
    finally:
        restore()
        if printer is not None:
            printer.close()
    _print_result(result, as_json)
    return 0


def _train_multiprocess(request: Any, args: argparse.Namespace) -> int:
    """``--num-processes N``: torchrun with N ranks; rank 0 writes the one run and adapter."""
    from llmcustoms.runs.progress import ProgressPrinter
    from llmcustoms.training.distributed import launch
    from llmcustoms.training.request import TrainResult

    if args.detach:
        raise InputError("--detach does not combine with --num-processes yet: run it inside tmux or screen.")
    printer = None if args.json else ProgressPrinter()
    try:
        run = launch(request, args.num_processes, sink=printer, fsdp=args.fsdp)
    finally:
        if printer is not None:
            printer.close()
    data = run.read()
    _print_result(TrainResult(run, data.get("adapter_path"), data.get("eval_loss_before"), data.get("eval_loss_after"),
                              int(data.get("steps") or 0), data.get("status", "?")), args.json)
    return 0


# -- chat ----------------------------------------------------------------------------------------
def _stream_to_stdout(chunks) -> str:
    text = []
    for piece in chunks:
        sys.stdout.write(piece)
        sys.stdout.flush()
        text.append(piece)
    print()
    return "".join(text)


def _chat_session(session_class: Any, ref: str, output_dir: str | None, settings: Settings) -> Any:
    """The chat session for ``ref`` (with ``main``'s settings: FORCE_CPU picks its device); a ref that is neither
    a run found nor a model says where runs were looked for."""
    from llmcustoms.errors import ModelNotFoundError
    from llmcustoms.models.registry import find_spec
    from llmcustoms.paths import runs_dir

    try:
        return session_class(ref, runs_root=output_dir, settings=settings)
    except ModelNotFoundError:
        if find_spec(ref) is not None or "/" in ref:  # a model name, a Hub id or a path: its own sentence
            raise
        where = output_dir or runs_dir()
        raise InputError(f"No run {ref!r} in {where} and no model of that name: give the run's folder, or "
                         "--output-dir with the folder that holds it (`llmcustoms models` lists the models)."
                         ) from None


def cmd_chat(args: argparse.Namespace) -> int:
    from llmcustoms.chat.session import ChatSession

    if args.prompt is not None and not args.prompt.strip():
        raise InputError("The prompt is empty: give a question with --prompt, or leave it out to chat.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, not {args.max_new_tokens}.")
    session = _chat_session(ChatSession, args.run, args.output_dir, _settings(args))
    print("Loading the model…", file=sys.stderr)
    session.load()
    index = session.support_index()  # built in the run folder on first chat; its note (moved, changed) said once
    if index is not None and index.note:
        print(index.note, file=sys.stderr)
    prompts = [args.prompt] if args.prompt else None
    if prompts is None and not sys.stdin.isatty():
        prompts = [line.strip() for line in sys.stdin if line.strip()]
    interactive = prompts is None
    if interactive:
        suggestions = "; ".join(session.example_prompts[:3])
        print("Type a question (empty line or Ctrl+D to leave)." + (f" Try: {suggestions}" if suggestions else ""),
              file=sys.stderr)
    while True:
        if interactive:
            try:
                prompt = input("you> ").strip()
            except EOFError:
                break
            if not prompt:
                break
        else:
            if not prompts:
                break
            prompt = prompts.pop(0)
        label = "tuned" if session.has_adapter else "model"
        print(f"{label}> ", end="", flush=True)
        answer = _stream_to_stdout(session.stream(prompt, tuned=True, max_new_tokens=args.max_new_tokens,
                                                  temperature=args.temperature))
        _print_support(session, prompt, answer, args.show_source)
        if args.compare and session.has_adapter:
            print("base>  ", end="", flush=True)
            answer = _stream_to_stdout(session.stream(prompt, tuned=False, max_new_tokens=args.max_new_tokens,
                                                      temperature=args.temperature))
            _print_support(session, prompt, answer, args.show_source)
    return 0


def _support_mark(args: argparse.Namespace, question: str, answer: str) -> str:
    """`eval --verbose`: where the run's documents support the tuned answer, or that none does (issue 24)."""
    from llmcustoms.support.verdict import support_for_run

    support = support_for_run(str(_open_run(args.run, args.output_dir).path), question, answer)
    return f"{support.location()} (supported)" if support.supported else support.line_text()


def _print_support(session: Any, prompt: str, answer: str, whole: bool) -> None:
    """Under an answer: the passage of the run's documents that supports it, or that none does (issue 24)."""
    from llmcustoms.support.show import support_lines

    support = session.support(prompt, answer)
    if support is not None:
        print("\n".join(support_lines(support, whole=whole)), flush=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from llmcustoms.evaluation.person_questions import load_questions
    from llmcustoms.evaluation.run_eval import check_run, evaluate_run_report

    if args.questions:
        load_questions(args.questions)  # a bad question file is said before anything loads
    check_run(args.run, args.output_dir)  # a run that can not be evaluated is said before "Loading…"
    unfinished = [False]  # a progress line left open (a judge that gave up part-way)

    def progress(condition: str, done: int, total: int) -> None:
        if not args.json:
            unfinished[0] = done < total
            print(f"\r  {condition:<9} {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    judge, judge_unavailable = _eval_judge(args) if args.judge else (None, None)
    if not args.json:
        print("Loading the model and asking the held-out questions…", file=sys.stderr)
        if judge is not None:
            print(f"The questions, reference answers and answers will be {judge.describe()} (--judge).",
                  file=sys.stderr)
    result = evaluate_run_report(args.run, output_dir=args.output_dir, progress=progress, judge=judge,
                                 judge_unavailable=judge_unavailable, questions_file=args.questions,
                                 general=not args.no_general)
    report = result.knowledge
    if unfinished[0]:
        print(file=sys.stderr)
    if args.json:
        _print_json(result.to_dict())
        return 0
    pct = (lambda v: "  –" if v is None else f"{100 * v:3.0f} %")  # noqa: E731
    judged = report.judge or {}
    column = (lambda c: f"   {pct(judged.get(c))}") if judged else (lambda c: "")  # noqa: E731
    print(f"Knowledge score on {report.questions} held-out questions (key span found, threshold "
          f"{report.threshold:g} of its words{'; judge: an LLM given the reference answer' if judged else ''}):")
    if judged:
        print("                            key span   judge")
    print(f"  base model, closed book   {pct(report.base)}{column('base')}")
    print(f"  tuned model, closed book  {pct(report.tuned)}{column('tuned')}")
    print(f"  base model, open book     {pct(report.open_book)}{column('open_book')}   (the passage in the prompt)")
    if args.verbose:
        _print_answer_rows(args, report.rows)
    if result.person is not None:
        person = result.person
        print(f"Your {person.questions} questions ({args.questions}):")
        print(f"  base model, closed book   {pct(person.base)}")
        print(f"  tuned model, closed book  {pct(person.tuned)}")
        print(f"  base model, open book     {pct(person.open_book)}   (the question's source file in the prompt)")
        if args.verbose:
            _print_answer_rows(args, person.rows)
    print(report.headline() + ".")
    for line in result.lines():
        print(line)
    if report.judge_line():
        print(report.judge_line())
    return 0


def _print_answer_rows(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """``eval --verbose``: each question, what a right answer holds, both answers, the judge's word and the
    passage of the run's documents that supports the tuned answer (or that none does)."""
    for row in rows:
        mark = "✓" if row.get("tuned_correct") else "✗"
        judge_said = row.get("tuned_judge")
        verdict = "  (judge: right)" if judge_said is True else "  (judge: wrong)" if judge_said is False else ""
        print(f"{mark} {row['question']}\n    want: {row['span']}\n    tuned: {row.get('tuned', '')[:120]}{verdict}\n"
              f"    base:  {row.get('base', '')[:120]}\n"
              f"    support: {_support_mark(args, row['question'], row.get('tuned', ''))}")


def _eval_judge(args: argparse.Namespace) -> tuple[Any, str | None]:
    """``(judge, None)`` for ``eval --judge``, or ``(None, why)`` when no server is configured."""
    from llmcustoms.errors import ConfigError
    from llmcustoms.evaluation.judge import judge_from_config

    try:
        return judge_from_config(_settings(args).to_dict()), None
    except ConfigError as error:
        return None, str(error)


# -- runs, attach, stop, resume --------------------------------------------------------------------
def cmd_runs(args: argparse.Namespace) -> int:
    from llmcustoms.runs.rundir import check_runs_root
    from llmcustoms.runs.status import run_summaries

    root = check_runs_root(args.output_dir, create=False)  # "No runs yet" only when the folder could hold some
    rows = run_summaries(args.output_dir)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No runs yet. Start one with: llmcustoms train DIR")
        return 0
    print(f"{'id':<40} {'model':<14} {'preset':<12} {'status':<11} {'step':>9} {'loss':>7}  age")
    for r in rows:
        if r["status"] == "damaged":  # run.json unreadable: no model, preset or steps to show, and no "None"
            print(f"{r['id']:<40} {'-':<14} {'-':<12} {'damaged':<11} {'-':>9} {'-':>7}  {r['age']}")
            continue
        loss = f"{r['last_loss']:.3f}" if isinstance(r.get("last_loss"), (int, float)) else "-"
        print(f"{r['id']:<40} {str(r.get('model') or '-')[:14]:<14} {str(r.get('preset') or '-'):<12} "
              f"{r['status']:<11} {r.get('step', 0):>4}/{r.get('max_steps') or '?':<4} {loss:>7}  {r['age']}")
    for r in rows:
        if r["status"] == "damaged":
            print(f"damaged: {r.get('error')}")
    print(f"Watch them in TensorBoard: tensorboard --logdir {root}")
    return 0


def _open_run(ref: str, output_dir: str | None) -> Any:
    from llmcustoms.runs.rundir import RunDir

    return RunDir.open(ref, root=output_dir)


def cmd_attach(args: argparse.Namespace) -> int:
    from llmcustoms.runs.follow import RunFollower
    from llmcustoms.runs.progress import ProgressPrinter

    run = _open_run(args.run, args.output_dir)
    printer = ProgressPrinter()
    print(f"Following {run.id} (Ctrl+C leaves it running).", file=sys.stderr, flush=True)
    update = None
    try:
        for update in RunFollower(run):
            for event in update.events:
                printer(event)
    except KeyboardInterrupt:
        printer.close()
        print(f"\nLeft run {run.id}; it goes on. Follow it again: llmcustoms attach {run.id} · "
              f"stop it: llmcustoms stop {run.id}", file=sys.stderr)
        return 0
    printer.close()
    status = update.status if update is not None else "unknown"
    if status == "interrupted":
        print(f"The run's process is gone (interrupted): continue it with llmcustoms resume {run.id}",
              file=sys.stderr)
        return 1
    print(f"Run {run.id}: {status}" + (f" · adapter in {update.adapter_path}"
                                      if update is not None and update.adapter_path else ""), file=sys.stderr)
    return 0 if status in ("done", "stopped") else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from llmcustoms.runs.status import run_state
    from llmcustoms.training.detach import stop_run

    run = _open_run(args.run, args.output_dir)
    if not run_state(run)["live"]:
        pass  # nothing is stopping: stop_run's one sentence says so, with no "Stopping…" before it
    elif args.force:
        print(f"Stopping {run.id} at once (--force): no checkpoint or adapter is saved now; "
              f"`llmcustoms resume {run.id}` continues from the last complete checkpoint.", file=sys.stderr)
    elif not args.no_wait:
        print(f"Stopping {run.id}: it finishes its step and saves a checkpoint and the adapter…", file=sys.stderr)
    state = stop_run(run, wait_s=None if args.no_wait else args.timeout, force=args.force)
    if args.no_wait:
        print(f"Asked run {run.id} to stop.")
    elif state["live"]:
        print(f"Run {run.id} has not stopped yet after {args.timeout:.0f} s; it will once its step ends "
              f"(llmcustoms attach {run.id} to watch).")
    else:
        print(f"Run {run.id}: {state['status']}" + (f" · adapter in {state['adapter_path']}"
                                                    if state.get("adapter_path") else ""))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    run = _open_run(args.run, args.output_dir)
    if args.detach:
        from llmcustoms.training.detach import resume_run

        _print_detached(resume_run(run), args.json, "Resumed")
        return 0
    from llmcustoms.training.trainer import resume_training

    settings = _settings(args)
    return _run_in_foreground(lambda sink, stop: resume_training(run, sink=sink, stop=stop, settings=settings),
                              args.json)


# -- export --------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from llmcustoms.export import export_run

    repo_id = getattr(args, "push_to_hub", None)
    reuse = None
    if repo_id:
        from llmcustoms.export import publish

        # Every refusal comes before the export: a bad name, no token, no way to ask.
        publish.check_repo_id(repo_id)
        token = publish.find_token()
        if not args.yes and not sys.stdin.isatty():
            raise InputError("Publishing to the Hub needs confirmation and there is no terminal to ask on: "
                             "rerun with --yes (nothing was exported or sent).")
        user = publish.check_token(token, repo_id)  # a refused token is said now, not after the export
        reuse = _reusable_export(args)
    if reuse is not None:
        print(f"Publishing the verified export already at {reuse} (add --force to export it anew).",
              file=sys.stderr)
        folder = reuse
    else:
        result = export_run(args.run, fmt=args.format, out=args.out, quant=args.quant, force=args.force,
                            progress=lambda m: print(m, file=sys.stderr), runs_root=args.output_dir)
        print(f"Exported {result.format} to {result.path}")
        if getattr(result, "verification", None):
            print(f"Verification: {result.verification}")
        if getattr(result, "ollama_command", None):
            print(f"For Ollama: {result.ollama_command}")
        folder = result.folder or result.path
    if not repo_id:
        return 0
    plan = publish.plan_publish(folder, repo_id, private=args.private)
    print(plan.describe(), file=sys.stderr)
    if not args.yes:
        try:
            answer = input(f"Upload to {plan.url}? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("Nothing was uploaded.", file=sys.stderr)
            return 1
    done = publish.publish(plan, token, user)
    print(f"Published {done.files} files ({done.total_bytes / 1e6:.1f} MB) to {done.url} "
          f"({'private' if done.private else 'public'}).")
    return 0


def _reusable_export(args: argparse.Namespace) -> Path | None:
    """The run's verified export of this format when one is already written (a rerun after a broken upload)."""
    if args.force:
        return None
    from llmcustoms.export.api import default_target
    from llmcustoms.export.publish import reusable_export
    from llmcustoms.export.source import open_run

    if args.out:
        target = Path(args.out).expanduser().absolute()
    else:
        target = default_target(open_run(args.run, args.output_dir), args.format, args.quant).absolute()
    return target if reusable_export(target, args.format, args.quant) else None


# -- the parser ----------------------------------------------------------------------------------
#: What a data folder may hold (every command that reads one says so).
DATA_FORMATS = ".txt, .md, .pdf, .docx, .html, .epub and chat .jsonl"
DATA_DIR_HELP = f"a folder of documents: {DATA_FORMATS} files, in sub-folders too"
#: The --output-dir help of every command that reads or writes runs.
OUTPUT_DIR_HELP = "where runs are kept (default: OUTPUT_DIR, else ~/.llmcustoms/runs)"
QA_HELP = ("where the Q&A examples come from: auto (the Q&A server when GROQ_API_KEY is set, else offline), "
           "offline, or groq")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from llmcustoms.planning.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="llmcustoms", description=f"Fine-tune a small chat model on your documents ({DATA_FORMATS}).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("hardware", help="show GPUs, memory and the recommended model and preset")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--model", default="auto",
                   help="plan for this model instead of the recommended one (default: auto)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="highspeed | quality | bestaccuracy (default: DEFAULT_PRESET, else quality)")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("models", help="list the models LLMCustoms knows and which are cached")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("validate", help="check a data folder and report what would be read and learnt")
    p.add_argument("dir", help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("prepare", help="turn a folder into chat training examples")
    p.add_argument("dir", help=DATA_DIR_HELP)
    p.add_argument("--qa", default="auto", choices=["auto", "offline", "groq"],
                   help=QA_HELP)
    p.add_argument("--out", help="write the examples as JSONL to this file")
    p.add_argument("--pairs", type=int, help="Q&A pairs asked per chunk (Groq)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="highspeed | quality | bestaccuracy (default: DEFAULT_PRESET, else quality)")
    p.add_argument("--yes", action="store_true", help="do not ask before sending text to the server")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="fine-tune a model on a folder")
    p.add_argument("dir", help=DATA_DIR_HELP)
    p.add_argument("--model", default=None,
                   help="a name from `llmcustoms models`, a folder or a Hub id (default: DEFAULT_MODEL, else auto)")
    p.add_argument("--preset", default=None,
                   help="highspeed | quality | bestaccuracy (default: DEFAULT_PRESET, else quality)")
    p.add_argument("--max-steps", type=int,
                   help="optimizer steps (1–1,000,000; default: MAX_STEPS, else from your data on a CPU, "
                        "the preset's on a GPU)")
    p.add_argument("--save-steps", type=int, help="save a checkpoint every N steps (default from the preset)")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.add_argument("--qa", default="auto", choices=["auto", "offline", "groq"],
                   help=QA_HELP)
    p.add_argument("--yes", action="store_true",
                   help="send the text to the Q&A server (GROQ_API_KEY) without asking; without it a run "
                        "with no terminal sends nothing")
    p.add_argument("--seed", type=int, default=42, help="random seed for the data split and training (default 42)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--max-seq-len", type=int, help="tokens per training row (default from the preset)")
    p.add_argument("--detach", action="store_true",
                   help="train in a background process that outlives this terminal; print the run and return")
    p.add_argument("--num-processes", type=int, help="train on N processes (GPUs, or CPU processes) with torchrun")
    p.add_argument("--fsdp", action="store_true", help="with --num-processes: shard the model (FSDP) instead of DDP")
    p.add_argument("--report-to", choices=["tensorboard", "wandb", "mlflow", "none"],
                   help="experiment tracker (default: REPORT_TO, else tensorboard when installed: files in the "
                        "run folder only); wandb and mlflow are used only when named")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("chat", help="chat with a trained run")
    p.add_argument("run", help="a run directory or id (or a model name to chat with a base model)")
    p.add_argument("--prompt", help="ask this one question and exit (without it: a chat at the terminal)")
    p.add_argument("--compare", action="store_true", help="also show the base model's answer")
    p.add_argument("--show-source", action="store_true",
                   help="print the whole passage of your documents that supports each answer")
    p.add_argument("--max-new-tokens", type=int, default=200, help="the longest answer, in tokens (default 200)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default) answers greedily; higher varies")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="the knowledge score of a run: base vs tuned vs open book on held-out questions")
    p.add_argument("run", help="a run id or folder")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.add_argument("--verbose", "-v", action="store_true", help="print every question with both answers")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--judge", action="store_true",
                   help="also grade the answers with an LLM given the reference answer (sends the questions and "
                        "answers to the GROQ_BASE_URL server with GROQ_API_KEY)")
    p.add_argument("--questions", metavar="FILE.jsonl",
                   help='also ask your own questions, one {"q": "…", "a": ["…"]} a line (a "source" file name '
                        "adds the open-book answer); shown beside the tool's own score")
    p.add_argument("--no-general", action="store_true",
                   help="skip the general-knowledge check (what the tuned model kept of the base model's)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("runs", help="list training runs")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("attach", help="follow a running training run (Ctrl+C leaves it running)")
    p.add_argument("run", help="a run id (or unique prefix) or directory")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("stop", help="stop a running training run gracefully (it saves its adapter)")
    p.add_argument("run", help="a run id (or unique prefix) or a run folder")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.add_argument("--no-wait", action="store_true", help="return at once instead of waiting for it to stop")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it to stop (default 300)")
    p.add_argument("--force", action="store_true", help="kill it at once (it can be resumed from a checkpoint)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("resume", help="continue a killed, stopped or failed run from its last checkpoint")
    p.add_argument("run", help="a run id (or unique prefix) or a run folder")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.add_argument("--detach", action="store_true", help="resume in a background process and return")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("export", help="export a run: adapter, merged weights or GGUF")
    p.add_argument("run", help="a run id (or unique prefix) or a run folder")
    p.add_argument("--format", default="merged", choices=["adapter", "merged", "gguf"],
                   help="adapter: the LoRA adapter; merged: base + adapter as one model (default); gguf: one "
                        "file for llama.cpp and Ollama")
    p.add_argument("--out", help="the folder to write the export to (default: RUN/export/FORMAT)")
    p.add_argument("--quant", default="f16",
                   choices=["f16", "q8_0", "q4_1", "q4_0", "q4_k_m", "q5_k_m", "q6_k"],
                   help="GGUF weights: f16 (default, exact), q8_0 (half the size), q4_1/q4_0 "
                        "(Ollama's everyday 4-bit size), or the K-quants q4_k_m/q5_k_m/q6_k (need "
                        "llama-cpp-python's quantizer)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier export written by llmcustoms (never a folder or file of anything else)")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME",
                   help="upload the verified export to this Hugging Face Hub repository (token: HF_TOKEN or "
                        "`hf auth login`); says what goes where and asks first")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    p.add_argument("--yes", action="store_true", help="with --push-to-hub: upload without asking")
    p.add_argument("--output-dir", help=OUTPUT_DIR_HELP)
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from llmcustoms.utils.config import Settings
    from llmcustoms.utils.logger import Logger, quiet_libraries

    if not args.debug:
        quiet_libraries()
    try:
        # The settings are read here, once, and handed to the command (``args.settings``).
        args.settings = Settings.load()
        Logger().setup_logger("DEBUG" if args.debug else args.settings.log_level, console=args.debug)
        return int(args.func(args) or 0)
    except LLMCustomsError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `llmcustoms runs | head -1`: the reader left; stop quietly (stdout is gone, so point it at nothing).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - the last line of defence: one sentence, no traceback
        if args.debug:
            raise
        no_room = _no_room(error)
        if no_room:  # a full disk is the user's to fix, not an "unexpected" error
            print(f"error: {no_room}", file=sys.stderr)
            return 1
        return _unexpected(error)


def _no_room(error: BaseException) -> str | None:
    """The sentence for an error that means there was no room to write (a full disk, a quota, a file size
    limit), however the library that wrote reported it; None for any other error."""
    import errno
    from pathlib import Path

    from llmcustoms.training.disk_full import is_disk_full

    if not is_disk_full(error, Path.cwd()):
        return None
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    os_error = next((e for e in chain if isinstance(e, OSError)), None)
    where = f" while writing {os_error.filename}" if os_error is not None and os_error.filename else ""
    if os_error is not None and os_error.errno == errno.EFBIG:
        return (f"there was no room to write{where}: a file reached the size limit this system sets "
                "(ulimit -f); raise the limit or write somewhere else, and run again.")
    return f"the disk is full{where}: free some space and run again."


def _unexpected(error: BaseException) -> int:
    from llmcustoms.utils.logger import get_logger, scrub

    get_logger("llmcustoms.cli").exception("unexpected error")
    print(f"error: unexpected {type(error).__name__}: {scrub(str(error)).splitlines()[0] if str(error) else ''} "
          "(run again with --debug for details)", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
