"""Issue 15 items 23 (TUI half), 24, 25 and 26: the wizard's words, gauges and layout tell the truth.

The real app driven by Pilot, scripted runs appending to a real events.jsonl, and SVG snapshots at
80×24 and in a 16-colour terminal (``TERM=xterm``). Update new snapshots with ``--snapshot-update``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest
from rich.color import ColorSystem
from rich.segment import Segment
from textual.containers import VerticalScroll
from textual.widgets import DirectoryTree, RadioSet

from llmcustoms_tui.app import FEW_COLOURS_THEME, LLMCustomsApp
from llmcustoms_tui.format import elide_middle, tui_hint
from llmcustoms_tui.launcher import RunHandle, ThreadLauncher
from llmcustoms_tui.screens.chat import ChatScreen
from llmcustoms_tui.screens.data import DataScreen
from llmcustoms_tui.screens.plan import PlanScreen
from llmcustoms_tui.screens.train import TrainScreen
from llmcustoms_tui.state import RunState
from llmcustoms_tui.widgets.gauge import MemoryGauge
from tests.helpers.tui_fakes import (
    SAMPLE_KNOWLEDGE,
    SAMPLE_PROBES,
    FakeChatSession,
    ScriptedLauncher,
    add_documents,
    scripted_events,
    write_run,
)
from tests.helpers.tui_pilot import contents, make_app, shown, start_scripted_run, wait_for, write_notes
from tests.helpers.tui_screens import show_chat_answer, show_data_preview, show_finished_run, show_plan

pytestmark = pytest.mark.anyio

SMALL = (80, 24)
#: Two files whose names share a long start: cut at the end they would read the same.
LONG_NAMES = ("velmoria_history_of_the_old_harbour.txt", "velmoria_history_of_the_lantern_festival.txt")


def write_long_names(folder: Path) -> Path:
    """The small data folder plus two files with long names that differ only at their end."""
    write_notes(folder)
    for name in LONG_NAMES:
        (folder / name).write_text("The Lantern Festival is held every autumn in Velmoria. " * 20, encoding="utf-8")
    return folder


def footer_keys(app: LLMCustomsApp) -> dict[str, str]:
    """What the footer offers now: key → description (only the bindings shown)."""
    return {key: active.binding.description for key, active in app.screen.active_bindings.items()
            if active.binding.show}


# -- item 24: words that match what the keys do ------------------------------------------------------
async def test_keys_say_what_they_do_while_training_and_after(tmp_path):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=3, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher,
                   chat_factory=FakeChatSession)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await start_scripted_run(pilot, app)
        gate.release()
        await wait_for(pilot, lambda: "step 1 / 3" in shown(app), what="step 1")
        keys = footer_keys(app)
        assert keys["escape"] == "Leave (run goes on)"
        assert keys["n"] == "chat opens when the run ends"  # not a greyed "Next: chat" that does nothing
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        assert any("opens when the run ends" in n.message for n in app._notifications)
        for _ in range(3):
            gate.release()
        await wait_for(pilot, lambda: screen.run_state.finished, what="the end of the run")
        await pilot.pause()
        keys = footer_keys(app)
        assert keys["escape"] == "Back" and keys["n"] == "Next: chat"
        assert "Leave (run goes on)" not in shown(app) and "s Stop" not in shown(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat")


async def test_a_failed_run_offers_back_not_leave(tmp_path):
    def failing_training(request, stop=None, on_run=None):
        from llmcustoms.errors import DataError

        raise DataError("The folder notes has too little text to train on: add a few paragraphs.")

    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline",
                   launcher=ThreadLauncher(run_training=failing_training))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await start_scripted_run(pilot, app)
        await wait_for(pilot, lambda: screen.run_state.finished, what="the failure")
        await pilot.pause()
        assert footer_keys(app)["escape"] == "Back"
        assert "Leave (run goes on)" not in shown(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), what="the plan again")


async def test_stopping_is_shown_as_soon_as_stop_is_confirmed(tmp_path):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await start_scripted_run(pilot, app)
        gate.release()
        await wait_for(pilot, lambda: "step 1 / 6" in shown(app), what="step 1")
        await pilot.press("s")
        await wait_for(pilot, lambda: "Stop training?" in shown(app), what="the question")
        await pilot.press("y")
        # The run is stuck in its step (the gate is closed): it has written nothing about stopping yet.
        await wait_for(pilot, lambda: "stopping: saving the adapter" in shown(app), what="stopping…")
        assert screen.run_state.status == "running" and not screen.run_state.finished
        assert "s" not in footer_keys(app)  # asked once; the run is saving
        gate.release()
        await wait_for(pilot, lambda: "stopped (adapter saved)" in shown(app), what="the stop")
        assert "stopping" not in contents(app, "#train-title")[0]


async def test_a_stop_asked_from_elsewhere_shows_as_stopping(tmp_path):
    """``llmcustoms stop`` from another shell (it writes the run's stop file) shows on the dashboard."""
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_scripted_run(pilot, app)
        gate.release()
        await wait_for(pilot, lambda: "step 1 / 6" in shown(app), what="step 1")
        assert "stopping" not in shown(app)
        (app.state.run.run_dir / "stop").write_text("1\n")
        await wait_for(pilot, lambda: "stopping: saving the adapter" in shown(app), what="stopping…")
        for _ in range(6):
            gate.release()


async def test_a_finished_run_shows_its_adapter_on_screen_and_no_toast_covers_it(tmp_path):
    notes = write_notes(tmp_path / "notes")
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=3, delay_s=0.0)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher)
    async with app.run_test(size=SMALL) as pilot:
        screen = await start_scripted_run(pilot, app)
        await wait_for(pilot, lambda: screen.run_state.finished, what="the end of the run")
        await pilot.pause(0.2)
        assert not [n for n in app._notifications if n.title == "Training finished"]
        adapter = Path(app.state.run.run_dir, "adapter").resolve().relative_to(tmp_path)
        assert f"Adapter {adapter}" in shown(app)


async def test_the_chat_status_is_not_cut_at_80x24(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=SMALL) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None)
        await pilot.pause()
        text = " ".join(shown(app).split())  # the status may wrap; it must not be cut
        assert "base model beside: off (ctrl+b)" in text


# -- item 25: the RAM gauge ----------------------------------------------------------------------------
def test_cpu_memory_events_carry_the_systems_use_and_the_processs_share():
    from llmcustoms.training.callbacks import memory_fields

    fields = memory_fields("cpu")
    system = psutil.virtual_memory()
    total = system.total / 2**20
    assert fields["ram_total_mb"] == int(total)
    assert abs(fields["ram_available_mb"] - system.available / 2**20) < 0.1 * total  # the system's own figure
    assert fields["ram_used_mb"] == pytest.approx(fields["ram_total_mb"] - fields["ram_available_mb"], abs=2)
    rss = psutil.Process().memory_info().rss / 2**20
    assert abs(fields["ram_process_mb"] - rss) < 200 and fields["ram_process_mb"] < fields["ram_used_mb"]


async def test_the_ram_gauge_says_available_not_total_minus_the_run(tmp_path):
    # A machine of 24 GB where the run uses 2.4 GB but only 12 GB are available (other programs use the rest).
    events = [{"kind": "start", "step": 0, "max_steps": 4},
              {"kind": "step", "step": 1, "max_steps": 4, "loss": 2.0, "ram_used_mb": 12288.0,
               "ram_total_mb": 24576.0, "ram_available_mb": 12288.0, "ram_process_mb": 2458.0}]
    run_dir = write_run(tmp_path / "runs", events, status="running", adapter=False)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.state.run = RunHandle.attach(run_dir)
        app.goto("train")
        await wait_for(pilot, lambda: "step 1 / 4" in shown(app), what="the step")
        detail = app.screen.query_one("#train-memory", MemoryGauge).detail()
        assert detail == "12.0 GB / 24.0 GB used · 12.0 GB available · this run 2.4 GB"
        assert "21.6 GB" not in shown(app) and "RAM" in shown(app)


def test_events_of_older_runs_show_the_run_share_not_a_made_up_free():
    state = RunState()
    state.apply({"kind": "step", "step": 1, "loss": 2.0, "ram_used_mb": 2423, "ram_total_mb": 24105})
    assert state.ram_process_mb == 2423 and state.ram_used_mb is None
    gauge = MemoryGauge(label="RAM")
    gauge.set_memory(state.ram_used_mb, state.ram_total_mb, process_mb=state.ram_process_mb)
    assert gauge.detail() == "this run 2.4 GB of 23.5 GB" and "free" not in gauge.detail()


# -- item 26: 80×24, 8 colours, the tree follows a typed path --------------------------------------------
def test_middle_elision_keeps_names_apart():
    cut = {elide_middle(name, 14) for name in LONG_NAMES}
    assert len(cut) == 2 and all(len(name) == 14 and "…" in name for name in cut)
    assert elide_middle("short.txt", 14) == "short.txt"


async def test_long_file_names_stay_different_at_80x24(tmp_path):
    write_long_names(tmp_path / "notes")
    app = make_app(data="notes", model="smollm2-135m", qa="offline")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None and "velmo" in shown(app), what="the report")
        await pilot.pause(0.3)
        lines = shown(app).splitlines()
        tree_names = {line[1:21].strip(" │├└─") for line in lines if "velmo" in line[1:21]}
        table_names = {line[22:].split()[0] for line in lines if "velmo" in line[22:]}
        assert len(tree_names) == 2 and len(table_names) == 2, "\n".join(lines)
        assert "Folders · files" in lines[1]  # the panel title is whole, not cut


async def test_the_plan_opens_at_its_top_at_80x24(tmp_path):
    write_notes(tmp_path / "notes")
    app = make_app(data="notes", model="smollm2-135m", qa="offline")
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None)
        await pilot.pause(0.3)
        body = app.screen.query_one("#plan-body", VerticalScroll)
        assert body.max_scroll_y > 0  # the plan is taller than the screen here
        assert body.scroll_y == 0
        assert isinstance(app.focused, RadioSet)  # the preset list still has the keys


async def test_typing_a_folder_moves_the_tree_to_it(tmp_path):
    write_notes(tmp_path / "notes")
    other = write_notes(tmp_path / "elsewhere" / "more")
    app = make_app(data="notes", model="smollm2-135m", qa="offline")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen) or app.screen.STEP == "hardware")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen) and app.state.report is not None)
        tree = app.screen.query_one(DirectoryTree)
        assert Path(tree.path).resolve() == (tmp_path / "notes").resolve()
        await pilot.press("ctrl+l")
        box = app.screen.query_one("#data-path")
        box.value = ""
        await pilot.press(*str(other))
        await wait_for(pilot, lambda: Path(tree.path).resolve() == other.resolve(), what="the tree at the typed folder")
        assert app.state.data_path == "notes"  # only moved: checking the folder still waits for Enter


def test_the_folder_tree_moves_its_cursor_to_a_folder_it_shows(tmp_path):
    """A folder already in the tree: the cursor goes there instead of a new root."""
    import asyncio

    write_notes(tmp_path / "data" / "a")
    write_notes(tmp_path / "data" / "b")

    async def run() -> None:
        app = make_app(data="data", model="smollm2-135m", qa="offline")
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DataScreen))
            tree = app.screen.query_one(DirectoryTree)
            await wait_for(pilot, lambda: len(tree.root.children) == 2, what="the tree's folders")
            # A user types after the screen has settled: the first check of the folder has finished.
            await wait_for(pilot, lambda: app.screen.wizard.report is not None, what="the folder's check")
            await pilot.pause(0.3)
            app.screen.follow_path("data/b")

            def on_b() -> bool:
                node = tree.cursor_node
                return node is not None and Path(node.data.path).name == "b" and node.is_expanded

            await wait_for(pilot, on_b, what="the cursor on data/b, expanded")
            assert Path(tree.path).resolve() == (tmp_path / "data").resolve()  # same root

    asyncio.run(run())


def _painted_colours(app: LLMCustomsApp, needle: str) -> set[int]:
    """The 16-colour numbers the terminal gets for the characters of ``needle`` on screen."""
    found: set[int] = set()
    for line in app.screen._compositor.render_full_update().strips:
        segments = [segment for strip in line for segment in strip]
        text = "".join(segment.text for segment in segments)
        at = text.find(needle)
        if at < 0:
            continue
        x = 0
        for segment in segments:
            if isinstance(segment, Segment) and segment.style and x + len(segment.text) > at and x < at + len(needle):
                colour = segment.style.color
                if colour is not None and segment.text.strip():
                    downgraded = colour.downgrade(ColorSystem.STANDARD)
                    if downgraded.number is not None:
                        found.add(downgraded.number)
            x += len(segment.text)
    return found


RED = {1, 9}  # red and bright red in a 16-colour terminal


async def test_a_16_colour_terminal_paints_headings_and_keys_not_red(monkeypatch, tmp_path):
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)
    write_notes(tmp_path / "notes")
    app = LLMCustomsApp(data="notes", model="smollm2-135m", qa="offline", hardware=make_app().state.hardware,
                        check_live_runs=False, cursor_blink=False)
    assert app.console.color_system == "standard"
    assert app.theme == FEW_COLOURS_THEME
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None and "Ready to train" in shown(app))
        await pilot.pause(0.2)
        assert _painted_colours(app, "Folder of .txt") and not _painted_colours(app, "Folder of .txt") & RED
        keys = _painted_colours(app, " ^r ")  # a key in the footer
        assert keys and not keys & RED
        assert not _painted_colours(app, "Ready to train") & RED


def test_a_true_colour_terminal_keeps_the_theme(monkeypatch):
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert LLMCustomsApp(check_live_runs=False).theme != FEW_COLOURS_THEME
    assert make_app().theme != FEW_COLOURS_THEME  # tests and screenshots pin the full colours


# -- item 23 (TUI half): the failure names the key, not a CLI flag ----------------------------------------
DOWNLOAD_FAILED = ("Could not download HuggingFaceTB/SmolLM2-360M-Instruct from the Hugging Face Hub after 3 tries "
                   "(no network). Check the network and run the same command again (finished files are kept), "
                   "or use the embedded model: --model smollm2-135m (works offline).")


def test_cli_advice_is_said_as_keys():
    assert "--model" not in tui_hint(DOWNLOAD_FAILED)
    assert "go back to the plan (esc) and press m to pick smollm2-135m" in tui_hint(DOWNLOAD_FAILED)
    assert "use the embedded model: press m to pick smollm2-135m (works offline)." in tui_hint(DOWNLOAD_FAILED, True)
    assert tui_hint("Or try `--preset highspeed`.", True) == "Or try press p to pick highspeed."


async def test_a_run_that_cannot_download_its_model_names_the_key(tmp_path):
    def no_network(request, stop=None, on_run=None):
        from llmcustoms.errors import DownloadError

        raise DownloadError(DOWNLOAD_FAILED)

    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=ThreadLauncher(run_training=no_network))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await start_scripted_run(pilot, app)
        await wait_for(pilot, lambda: screen.run_state.finished, what="the failure")
        await pilot.pause(0.2)
        panel = " ".join(contents(app, "#error-panel")[0].split())
        assert "press m to pick smollm2-135m" in panel and "--model" not in panel
        assert all("--model" not in n.message for n in app._notifications)


async def test_a_plan_whose_model_cannot_be_had_says_which_key_and_does_not_start(tmp_path):
    write_notes(tmp_path / "notes")
    app = make_app(data="notes", model="smollm2-135m", qa="offline")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None)
        plan = app.state.plan
        for name, value in (("available", False), ("offline_alternative", "smollm2-135m"),
                            ("availability", "qwen2.5-0.5b is not downloaded yet and huggingface.co cannot be "
                                             "reached: connect this machine to the network.")):
            object.__setattr__(plan, name, value) if not isinstance(plan, dict) else plan.__setitem__(name, value)
        app.screen.show_plan(plan)
        await pilot.pause()
        fit = " ".join(contents(app, "#plan-fit")[0].split())
        assert "cannot be reached" in fit and "Press m to pick smollm2-135m" in fit
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, PlanScreen) and app.state.run is None


# -- snapshots: 80×24 and 16 colours (the same steps as test_tui_snapshots' 100×30 pictures) ----------------
def test_snapshot_data_screen_80x24(snap_compare, tmp_path):
    write_long_names(tmp_path / "notes")
    app = make_app(data="notes", model="tinyllama", qa="offline")
    assert snap_compare(app, terminal_size=SMALL, run_before=show_data_preview(app))


def test_snapshot_plan_screen_80x24(snap_compare, tmp_path):
    write_notes(tmp_path / "notes")
    app = make_app(data="notes", model="smollm2-135m", qa="offline")
    assert snap_compare(app, terminal_size=SMALL, run_before=show_plan(app))


def _finished_run(tmp_path) -> Path:
    return write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                     probes=SAMPLE_PROBES)


def test_snapshot_train_screen_80x24(snap_compare, tmp_path):
    app = make_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=show_finished_run(app, _finished_run(tmp_path)))


def test_snapshot_chat_screen_80x24(snap_compare, tmp_path):
    run_dir = _finished_run(tmp_path)
    add_documents(run_dir, tmp_path / "docs")  # the tuned answer's support line (issue 24)
    app = make_app(chat_factory=FakeChatSession)
    assert snap_compare(app, terminal_size=SMALL, run_before=show_chat_answer(app, run_dir))


def test_snapshot_data_screen_16_colours(snap_compare, tmp_path):
    write_notes(tmp_path / "notes")
    app = make_app(data="notes", model="tinyllama", qa="offline", few_colours=True)
    assert snap_compare(app, terminal_size=(100, 30), run_before=show_data_preview(app))


def test_snapshot_train_screen_16_colours(snap_compare, tmp_path):
    app = make_app(few_colours=True)
    assert snap_compare(app, terminal_size=(100, 30), run_before=show_finished_run(app, _finished_run(tmp_path)))
