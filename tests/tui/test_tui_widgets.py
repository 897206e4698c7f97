"""Unit tests of the TUI's pieces that need no running app: the event reducer, formatting, path completion,
and the drawing of the gauge and the loss chart (rendered inside a tiny app)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from llmcustoms.errors import DataError
from llmcustoms_tui.format import (
    MEASURED_LINE,
    describe_error,
    fmt_duration,
    fmt_mb,
    fmt_minutes,
    knowledge_headline,
    knowledge_parts,
    knowledge_summary,
)
from llmcustoms_tui.messages import AnswerChunk, RunSnapshot
from llmcustoms_tui.state import RunState
from llmcustoms_tui.widgets.gauge import MemoryGauge
from llmcustoms_tui.widgets.knowledge import KnowledgeLine
from llmcustoms_tui.widgets.loss_chart import LossChart
from llmcustoms_tui.widgets.paths import complete_path
from tests.helpers.tui_fakes import FEW_FACTS_KNOWLEDGE, SAMPLE_KNOWLEDGE, scripted_events

HEAVY = ("torch", "transformers", "peft", "datasets")


def test_importing_the_app_loads_no_heavy_library():
    """The first screen must appear in about a second: nothing heavy is imported with the app."""
    code = ("import sys, llmcustoms_tui.app; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at start: {result.stdout.strip()}"


PROBE_CHILD = """
import json, sys
from llmcustoms_tui.app import LLMCustomsApp
seen = {}

async def until_report(pilot):
    for _ in range(1200):
        if pilot.app.state.hardware is not None:
            break
        await pilot.pause(0.05)
    await pilot.pause()
    seen["hardware"] = pilot.app.state.hardware
    seen["heavy"] = [m for m in HEAVY if m in sys.modules]
    pilot.app.exit()

HEAVY = sys.argv[1].split(",")
LLMCustomsApp(check_live_runs=False).run(headless=True, auto_pilot=until_report)
print(json.dumps(seen))
"""


def test_the_real_hardware_probe_fills_the_first_screen_without_torch_in_the_tui():
    """The default probe (a child process) reports this machine; the TUI's own process stays light."""
    result = subprocess.run([sys.executable, "-c", PROBE_CHILD, ",".join(HEAVY)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == [], f"imported by the TUI process: {seen['heavy']}"
    hardware = seen["hardware"]
    assert hardware is not None and hardware["cpu_count"] == os.cpu_count()
    assert hardware["torch_version"], "the child imported torch and said which"


def test_the_core_never_imports_textual():
    """The headless core stays headless (the import-linter contract in pyproject.toml says the same;
    this reads every module's imports statically, so it costs milliseconds, not a torch import)."""
    root = Path(__file__).resolve().parents[2] / "llmcustoms"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.split(".")[0] in ("textual", "llmcustoms_tui")]
    assert offenders == []


def test_run_state_folds_a_whole_run():
    state = RunState()
    for event in scripted_events(30):
        state.apply(event)
    assert state.finished and state.status == "done"
    assert state.step == 30 and state.max_steps == 30
    assert [s for s, _ in state.train_points] == list(range(1, 31))
    assert [s for s, _ in state.eval_points] == [0, 10, 20, 30]
    assert state.eval_loss_before == pytest.approx(3.2) and state.eval_loss_after == pytest.approx(1.52)
    assert state.vram_total_mb == 12288 and state.tokens_per_s == 1850
    assert state.memory == ("VRAM", 2330, 12288)
    cpu = RunState()
    cpu.apply({"kind": "step", "step": 1, "loss": 2.0, "ram_used_mb": 12000, "ram_total_mb": 24105,
               "ram_available_mb": 12105, "ram_process_mb": 2423})
    assert cpu.memory == ("RAM", 12000, 24105)  # the system's use; the run's share apart
    assert cpu.ram_available_mb == 12105 and cpu.ram_process_mb == 2423
    assert any("checkpoint" in line for line in state.log)
    assert state.log[-1].startswith("Done")


def test_run_state_survives_odd_events():
    """Unknown kinds, NaN, missing fields and a resume that repeats steps never break the dashboard."""
    state = RunState()
    for event in [{"kind": "start", "max_steps": 10}, {"kind": "step", "step": 1, "loss": float("nan")},
                  {"kind": "step", "step": 2, "loss": "x"}, {"kind": "mystery", "message": "hello"},
                  {"kind": "step", "step": 3, "loss": 2.0}, {"kind": "resume", "step": 2, "message": "Resumed"},
                  {"kind": "step", "step": 3, "loss": 1.5}, {"kind": "warning", "message": "loss stuck"},
                  {"kind": "error", "message": "The GPU ran out of memory."}]:
        state.apply(event)
    assert state.train_points == [(3, 1.5)]
    assert state.warnings == ["loss stuck"]
    assert state.status == "failed" and state.finished
    assert "hello" in state.log and state.log[-1] == "✖ The GPU ran out of memory."


def test_stop_then_done_is_reported_as_stopped():
    state = RunState()
    for event in [{"kind": "start", "max_steps": 10}, {"kind": "step", "step": 4, "loss": 2.0},
                  {"kind": "stop", "message": "Stopping"}, {"kind": "done", "step": 4}]:
        state.apply(event)
    assert state.status == "stopped"


def test_run_state_folds_the_knowledge_score_and_the_dev_checks():
    state = RunState()
    for event in scripted_events(30, knowledge=True):
        state.apply(event)
    assert state.knowledge_checks == [(10, 0.25), (20, 0.625), (30, 0.625)] and state.best_step == 20
    assert state.dev_score == (0.625, 0.625)
    assert state.knowledge["questions"] == 30 and state.knowledge["tuned"] == pytest.approx(22 / 30)
    assert "rows" not in state.knowledge
    assert any(line.startswith("◆ Dev questions at step 10: 2 of 8 right") for line in state.log)
    assert any(line.startswith("◆ Knowledge: knows 22 of 30") for line in state.log)
    # A done event alone (no knowledge event seen: a log cut short) still carries the numbers.
    done_only = RunState()
    done_only.apply({"kind": "done", "knowledge": {"questions": 10, "base": 0.0, "tuned": 0.5, "open_book": None}})
    assert knowledge_headline(done_only.knowledge) == "Knows 5 of 10 held-out facts; the base model knew 0"
    # An empty one (too few facts) is no score; odd values do not break it.
    empty = RunState()
    empty.apply({"kind": "done", "knowledge": {}})
    assert empty.knowledge is None
    odd = RunState()
    odd.apply({"kind": "knowledge_check", "step": 4, "dev_score": "x"})
    odd.apply({"kind": "knowledge", "questions": "many", "tuned": float("nan")})
    assert odd.dev_score is None and odd.knowledge["questions"] == 0 and odd.knowledge["tuned"] is None


def test_the_knowledge_line_fits_its_width():
    line = KnowledgeLine()
    line.summary = knowledge_summary(SAMPLE_KNOWLEDGE)
    long = "Knows 22 of 30 held-out facts (73 %) · base model 1 (3 %) · open book 25 (83 %)"
    method = "\n" + MEASURED_LINE  # how the numbers are measured, under them in every form
    assert line.plain == long + method
    assert line.form_for(100).plain == long + method
    assert line.form_for(78).plain == "Knows 22 of 30 held-out facts (73 %) · base 1 (3 %) · open book 25 (83 %)" + method
    assert line.form_for(50).plain == ("Knows 22 of 30 held-out facts (73 %)\nbase model 1 (3 %) · open book 25 (83 %)"
                                       + method)
    line.summary = knowledge_summary(FEW_FACTS_KNOWLEDGE)
    assert line.plain.startswith("Knowledge: Too few facts to test (3 checkable")
    assert knowledge_headline(line.summary).startswith("Too few facts to test")


def test_the_knowledge_line_shows_what_was_kept_and_your_questions():
    summary = knowledge_summary({**SAMPLE_KNOWLEDGE, "general_kept": 0.97, "general_perplexity_change": 0.02,
                                 "person_questions": 30, "person_tuned": 0.4})
    assert knowledge_parts(summary)[-2:] == ["your 30 questions 40 %", "kept 97 % of general knowledge"]
    assert knowledge_headline(summary).endswith("; your 30 questions: 40 %; kept 97 % of general knowledge")
    bare = knowledge_summary(SAMPLE_KNOWLEDGE)
    assert not any("kept" in part for part in knowledge_parts(bare))  # a run from before the general check


def test_fast_messages_coalesce():
    """A newer snapshot of the same run replaces an older one; a final answer chunk is never dropped."""
    old, new = RunSnapshot("a", RunState()), RunSnapshot("a", RunState())
    new.state.apply({"kind": "step", "step": 2})
    assert old.can_replace(new) and not old.can_replace(RunSnapshot("b", RunState()))
    assert AnswerChunk(1, "tuned", "a").can_replace(AnswerChunk(1, "tuned", "ab"))
    assert not AnswerChunk(1, "tuned", "a", done=True).can_replace(AnswerChunk(1, "tuned", "ab"))
    assert not AnswerChunk(1, "tuned", "a", complete=True).can_replace(AnswerChunk(1, "tuned", "ab"))
    assert not AnswerChunk(1, "tuned", "a").can_replace(AnswerChunk(1, "base", "ab"))


def test_formatting():
    assert fmt_mb(512) == "512 MB" and fmt_mb(12288) == "12.0 GB" and fmt_mb(None) == "?"
    assert fmt_duration(65) == "1:05" and fmt_duration(3725) == "1:02:05" and fmt_duration(None) == "—"
    assert fmt_minutes(0.4) == "under a minute" and fmt_minutes(12.2) == "about 12 min"


def test_errors_are_one_readable_line():
    assert describe_error(DataError("The folder notes holds no .txt files.")) == "The folder notes holds no .txt files."
    assert describe_error(ValueError("bad value\nTraceback …")) == "ValueError: bad value"
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_path_completion_keeps_tilde(tmp_path, monkeypatch):
    (tmp_path / "Documents").mkdir()
    (tmp_path / "Downloads").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert complete_path("~") == "~/"
    assert complete_path("~/Doc") == "~/Documents/"
    assert complete_path("~/Dow") == "~/Downloads/"
    assert complete_path("~/no") is None  # files are not folders
    assert complete_path("~/.h") == "~/.hidden/"
    assert complete_path(f"{tmp_path}/Do") == f"{tmp_path}/Documents/"


class _WidgetApp(App[None]):
    def __init__(self, *widgets) -> None:
        super().__init__()
        self._widgets = widgets

    def compose(self) -> ComposeResult:
        yield from self._widgets


@pytest.mark.anyio
async def test_gauge_draws_used_and_free():
    gauge = MemoryGauge(3072, 8192, label="VRAM")
    need = MemoryGauge(9000, 8192, label="Memory", mode="need")
    async with _WidgetApp(gauge, need).run_test(size=(80, 4)):
        text = str(gauge.render())
        assert text.startswith("VRAM ") and "█" in text and "░" in text
        assert "3.0 GB / 8.0 GB used · 5.0 GB free" in text
        assert "needs 8.8 GB, only 8.0 GB free" in str(need.render())
        assert need.fraction > 1


@pytest.mark.anyio
async def test_loss_chart_fills_as_steps_arrive():
    chart = LossChart()
    async with _WidgetApp(chart).run_test(size=(70, 9)):
        assert "waiting for the first step" in str(chart.render())
        points = [(s, 3.0 - s * 0.1) for s in range(1, 11)]
        chart.set_data(points[:3], [], 10)
        third = chart.filled_columns(60)
        chart.set_data(points, [(10, 2.2)], 10)
        assert 0 < third < chart.filled_columns(60) == 60
        drawn = str(chart.render())
        assert "●" in drawn and "█" in drawn and "2.900" in drawn
        # Sparse logging (every 5 steps) still draws a continuous chart.
        chart.set_data([(5, 2.0), (10, 1.5)], [], 10)
        assert chart.filled_columns(60) == 60


def test_log_tail_keeps_the_newest_lines_when_long_ones_wrap():
    from llmcustoms_tui.widgets.log_tail import LogTail

    log = LogTail()
    log.lines = ["old"] + ["x" * 25] + [f"step {n}" for n in range(1, 4)]
    assert log.tail(width=10, height=4) == ["step 1", "step 2", "step 3"]  # the 3-row line does not fit
    assert log.tail(width=10, height=6) == ["x" * 25, "step 1", "step 2", "step 3"]
    assert log.tail(width=10, height=1) == ["step 3"]
