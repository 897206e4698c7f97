"""Pilot tests of the wizard: keys in, what the screen shows out.

Most tests inject a fixed hardware report and a scripted run (a thread appending to a real
events.jsonl) so they are fast and deterministic; ``test_full_walk_with_the_tiny_model`` walks all
five screens against the real core: validation, planning, training (6 steps) and a streamed answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList

from llmcustoms.errors import LLMCustomsError
from llmcustoms_tui import backend
from llmcustoms_tui.app import LLMCustomsApp, main
from llmcustoms_tui.launcher import RunHandle
from llmcustoms_tui.screens.chat import ChatScreen
from llmcustoms_tui.screens.confirm import ConfirmScreen
from llmcustoms_tui.screens.data import DataScreen
from llmcustoms_tui.screens.hardware import HardwareScreen
from llmcustoms_tui.screens.plan import PlanScreen
from llmcustoms_tui.screens.train import TrainScreen
from llmcustoms_tui.widgets.loss_chart import LossChart
from tests.helpers.tui_fakes import (
    FEW_FACTS_KNOWLEDGE,
    FIXED_HARDWARE,
    RUN_ID,
    SAMPLE_KNOWLEDGE,
    SAMPLE_PROBES,
    FakeChatSession,
    ScriptedLauncher,
    scripted_events,
    write_run,
)
from tests.helpers.tui_pilot import contents, make_app, shown, start_scripted_run, wait_for, write_notes

pytestmark = pytest.mark.anyio


# -- hardware --------------------------------------------------------------------------------------
async def test_hardware_screen_shows_gpus_memory_and_warnings():
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "GPU 0" in shown(app) and "Next: data" in shown(app), what="the report")
        assert isinstance(app.screen, HardwareScreen)
        text = shown(app)
        assert "GPU 0  NVIDIA GeForce RTX 3060" in text
        assert "1.0 GB / 12.0 GB used · 11.0 GB free" in text
        assert "8 cores" in text and "2.5.1+cu124 (CUDA 12.4)" in text
        assert "⚠ NVML is not installed" in text
        assert "Next: data" in text and "Detect again" in text  # the footer shows the keys
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen), what="the data screen")


async def test_hardware_probe_runs_in_a_worker_and_fills_in():
    release = threading.Event()

    def slow_probe() -> dict:
        release.wait(10)
        return {**FIXED_HARDWARE, "gpus": [], "device": "cpu", "cuda_available": False, "warnings": []}

    app = make_app(hardware=None, hardware_probe=slow_probe)
    async with app.run_test(size=(100, 30)) as pilot:
        # The screen is up before the probe ends.
        await wait_for(pilot, lambda: "Probing the hardware" in shown(app), what="the first screen")
        release.set()
        await wait_for(pilot, lambda: "No GPU found" in shown(app), what="the probe result")
        assert re.search(r"Trains on +the CPU", shown(app))


async def test_a_failing_worker_shows_a_readable_error_not_a_crash():
    def broken_probe() -> dict:
        raise LLMCustomsError("NVML said the driver is too old: update the NVIDIA driver.")

    app = make_app(hardware=None, hardware_probe=broken_probe)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "driver is too old" in shown(app), what="the error")
        text = shown(app)
        assert "The hardware probe failed: NVML said the driver is too old" in text
        assert "Traceback" not in text
        assert app.is_running and isinstance(app.screen, HardwareScreen)


# -- data ------------------------------------------------------------------------------------------
async def test_a_bad_folder_blocks_the_way_on(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    app = make_app(data=str(empty))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Blocked" in shown(app), what="the verdict")
        text = shown(app)
        assert "✖ Blocked:" in text and ".txt" in text  # the core's sentence names the problem
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)  # no way on
        assert app.state.report is not None and not app.state.report.ok


async def test_typing_a_missing_folder_says_so(tmp_path):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DataScreen))
        await pilot.click("#data-path")
        await pilot.press(*"nowhere-at-all", "enter")
        await wait_for(pilot, lambda: "Blocked" in shown(app), what="the verdict")
        assert "nowhere-at-all" in shown(app)
        await pilot.press("ctrl+t", "n")  # leave the input; n must not go on
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)


async def test_a_good_folder_shows_report_and_pairs_next_to_their_source(tmp_path, tiny_model_dir):
    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model=str(tiny_model_dir), qa="offline")
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Ready to train" in shown(app), what="the verdict")
        await wait_for(pilot, lambda: len(app.screen.query(".sample")) == 3, timeout=40, what="the preview")
        text = shown(app)
        assert "harbour.txt" in text and "festival.txt" in text  # the per-file table
        assert "A sample of 3, next to the text each came" in text
        pairs = contents(app, ".sample-pair")
        sources = contents(app, ".sample-source")
        rendered = contents(app, ".sample-rendered")
        # An explicit pair from harbour.txt, next to its source…
        at = next(i for i, pair in enumerate(pairs) if "Q: What powers the Tide Engine?" in pair)
        assert sources[at].startswith("harbour.txt") and "clockwork pump" in sources[at]
        # …and rendered through the tiny model's (SmolLM2's) chat template.
        assert "<|im_start|>user" in rendered[at] and "What powers the Tide Engine?" in rendered[at]


class _FakeServerGenerator:
    """A Q&A generator that would send text to a server: it has a plan, so the core asks to confirm."""

    name = "fake-server"

    def plan(self, chunks):
        class _Plan:
            def describe(self) -> str:
                return f"{len(chunks)} chunks, about 2,000 tokens, to fake-server"

        return _Plan()

    def generate(self, chunks, progress=None):
        from llmcustoms.data.types import Example

        examples = []
        for index, chunk in enumerate(chunks):
            examples.append(Example(messages=[{"role": "user", "content": f"What does {chunk.source} say?"},
                                              {"role": "assistant", "content": chunk.text[:60]}],
                                    source=chunk.source, kind="generated"))
            if progress is not None:
                progress(index + 1, len(chunks))
        return examples


async def test_sending_text_to_a_server_is_confirmed_first(tmp_path, monkeypatch):
    import llmcustoms.data.examples as examples

    monkeypatch.setattr(examples, "choose_generator", lambda *a, **k: _FakeServerGenerator())
    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model="tinyllama", qa="groq")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Send text to the Q&A server?" in shown(app) and "to fake-server" in shown(app),
                       what="the question")
        await pilot.press("n")  # stay offline
        await wait_for(pilot, lambda: len(app.screen.query(".sample")) > 0 and "(offline)" in shown(app),
                       what="the offline preview")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "Send text to the Q&A server?" in shown(app), what="the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: "(groq)" in shown(app), what="the generated preview")
        pairs = contents(app, ".sample-pair")
        assert any("Q: What does festival.txt:0 say?" in pair for pair in pairs)


# -- plan ------------------------------------------------------------------------------------------
async def test_plan_shows_reason_memory_and_warns_before_a_run_that_does_not_fit(tmp_path, monkeypatch):
    notes = write_notes(tmp_path / "notes")
    from tests.helpers.tui_screens import (
        count_models_as_downloadable,  # it imports this module: not at the top
    )

    count_models_as_downloadable(monkeypatch)  # this test is about memory, not the network
    small_gpu = {**FIXED_HARDWARE, "gpus": [{"index": 0, "name": "Tiny GPU", "total_mb": 2048, "free_mb": 1800,
                                             "used_mb": 248}]}
    launcher = ScriptedLauncher(tmp_path / "runs")
    app = make_app(data=str(notes), model="llama-3.2-3b", preset="bestaccuracy", hardware=small_gpu, qa="offline",
                   launcher=launcher)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None,
                       what="the plan")
        text = shown(app)
        assert "Will not fit" in text and "Memory" in text and "needs" in text
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and "will not fit" in shown(app).lower(),
                       what="the warning")
        await pilot.press("n")  # change the plan instead
        await pilot.pause()
        assert isinstance(app.screen, PlanScreen) and launcher.fields is None
        # The presets are all listed with what each means.
        text = shown(app)
        for preset in ("highspeed", "quality", "bestaccuracy"):
            assert preset in text


async def test_plan_shows_what_goes_to_the_server_and_starts_only_after_a_yes(tmp_path, monkeypatch):
    """GROQ_API_KEY set, Q&A auto: the plan names the server, and n asks before any run (or request) starts."""
    from tests.helpers.openai_stub_server import StubServer

    notes = write_notes(tmp_path / "notes")
    launcher = ScriptedLauncher(tmp_path / "runs")
    with StubServer() as server:
        monkeypatch.setenv("GROQ_API_KEY", "gsk_test_tui_consent_0123456789")
        monkeypatch.setenv("GROQ_BASE_URL", server.base_url)
        monkeypatch.setenv("GROQ_MODEL", "stub-model")
        app = make_app(data=str(notes), model="smollm2-135m", qa="auto", launcher=launcher)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("enter")
            # the data screen's preview asks first too: stay offline there
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the preview's question")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, DataScreen) and "(offline)" in shown(app),
                           what="the offline preview")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and "go to" in shown(app),
                           what="the plan's line about the server")
            assert "stub-model" in shown(app) and "you confirm before training starts" in shown(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert "Send text to the Q&A server?" in shown(app) and "to send" in shown(app)
            await pilot.press("n")  # not now: nothing starts
            await pilot.pause()
            assert isinstance(app.screen, PlanScreen) and launcher.fields is None
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
            await pilot.press("y")
            await wait_for(pilot, lambda: launcher.fields is not None, what="the run to start")
            assert launcher.fields["send_consent"] is True and launcher.fields["qa"] == "auto"
        assert server.requests == [], "nothing may be sent before the run itself starts"


def test_the_request_from_the_wizard_carries_the_consent():
    from llmcustoms_tui.launcher import make_request

    assert make_request(data_path="notes", qa="auto", send_consent=True).send_consent is True
    assert make_request(data_path="notes", qa="auto").send_consent is False


# -- train -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_dashboard_follows_the_event_file_step_by_step(tmp_path, size):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher, max_steps=6,
                   chat_factory=FakeChatSession)
    async with app.run_test(size=size) as pilot:
        await start_scripted_run(pilot, app)
        assert launcher.fields["max_steps"] == 6 and launcher.fields["data_path"] == str(notes)
        chart = app.screen.query_one(LossChart)
        filled = []
        for step in range(1, 7):
            gate.release()
            await wait_for(pilot, lambda s=step: f"step {s} / 6" in shown(app), what=f"step {step}")
            filled.append(chart.filled_columns(60))
        assert filled == sorted(filled) and filled[0] < filled[-1] == 60  # the sparkline fills up
        await wait_for(pilot, lambda: "Eval loss before 3.200 → after 1.520" in shown(app), what="the result")
        text = shown(app)
        assert "done" in text and "VRAM" in text and "tokens/s" in text and "1,850" in text
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat")


async def test_leaving_the_dashboard_keeps_the_run_and_stop_saves(tmp_path):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_scripted_run(pilot, app)
        gate.release()
        gate.release()
        await wait_for(pilot, lambda: "step 2 / 6" in shown(app))
        await pilot.press("escape")  # leave; the run goes on
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen))
        assert app.state.run.alive
        gate.release()
        # Back via the command palette, by screen name.
        await pilot.press("ctrl+p")
        await pilot.press(*"Go to Train")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard again")
        await wait_for(pilot, lambda: "step 3 / 6" in shown(app), what="the replayed progress")
        await pilot.press("s")
        await wait_for(pilot, lambda: "Stop training?" in shown(app), what="the question")
        await pilot.press("y")
        gate.release()
        await wait_for(pilot, lambda: "stopped (adapter saved)" in shown(app), what="the stop")
        assert app.state.run.stop_event.is_set() and not app.state.run.alive
        assert "Eval loss before 3.200 → after 2.500" in shown(app)


async def test_quit_asks_first_while_a_run_is_in_the_foreground(tmp_path):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_scripted_run(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: "Quit while training?" in shown(app), what="the question")
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, TrainScreen)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: "Quit while training?" in shown(app), what="the question")
        await pilot.press("y")  # quits once the run has stopped and saved
        for _ in range(6):
            gate.release()
        await wait_for(pilot, lambda: not app.is_running, what="the exit")
    assert app.state.run.stop_event.is_set()
    assert (app.state.run.run_dir / "adapter").is_dir()


async def test_a_live_run_from_an_earlier_session_is_offered_on_start(isolated_home):
    run_dir = write_run(isolated_home / "runs", scripted_events(30, upto=12, finished=False), status="running",
                        adapter=False)
    # Another process trains it: it holds the run's lock, as the core's worker does.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llmcustoms.runs.rundir import RunDir, RunLock; "
        f"RunLock(RunDir({str(run_dir)!r})).acquire(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        data = (run_dir / "run.json").read_text().replace('"pid": 0', f'"pid": {holder.pid}')
        (run_dir / "run.json").write_text(data)
        app = make_app(check_live_runs=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and RUN_ID in shown(app),
                           what="the offer")
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
            await wait_for(pilot, lambda: "step 12 / 30" in shown(app), what="the attached run's progress")
            assert not app.state.run.in_process
            await pilot.press("q")  # a detached run survives: still asks, as it is in the foreground
            await wait_for(pilot, lambda: "goes on in its own process" in shown(app), what="the question")
            await pilot.press("n")
            await pilot.press("s")  # stop: through the core, which asks the run's process to stop
            await wait_for(pilot, lambda: "Stop training?" in shown(app), what="the stop question")
            await pilot.press("y")
            await wait_for(pilot, lambda: (run_dir / "stop").exists(), what="the stop request")
            holder.kill()  # the process dies without a last event: the dashboard must not wait forever
            holder.wait()
            await wait_for(pilot, lambda: "interrupted" in shown(app), what="the dead run recognised")
            await pilot.press("q")  # nothing runs any more: no question
            await wait_for(pilot, lambda: not app.is_running)
    finally:
        holder.kill()
        holder.wait()


# -- chat ------------------------------------------------------------------------------------------
async def test_chat_streams_answers_and_compares_with_the_base_model(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30))
    sessions: list[FakeChatSession] = []

    def factory(path: str) -> FakeChatSession:
        sessions.append(FakeChatSession(path))
        return sessions[-1]

    app = make_app(chat_factory=factory)
    async with app.run_test(size=(100, 30)) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        # Loaded, with the run's example prompts offered:
        await wait_for(pilot, lambda: "Ready" in shown(app) and "What is the Tide Engine?" in shown(app),
                       what="the model")
        await pilot.press(*"Tell me about the engine", "enter")
        await wait_for(pilot, lambda: "built by Emeric" in shown(app), what="the answer")
        assert "You: Tell me about the engine" in shown(app)
        await pilot.press("ctrl+b")  # the base model's answer for the same prompt, beside it
        await wait_for(pilot, lambda: "not sure" in shown(app), what="the base answer")
        assert "base model" in shown(app) and "tuned" in shown(app)
        await pilot.press("ctrl+o", "enter")  # a suggestion goes into the prompt box…
        await wait_for(pilot, lambda: app.screen.query_one("#chat-input", Input).value == "What is the Tide Engine?",
                       what="the suggestion in the prompt")
        await pilot.press("enter")  # …and Enter sends it
        await wait_for(pilot, lambda: "You: What is the Tide Engine?" in shown(app), what="the suggestion")
        await pilot.press("escape")
        await pilot.pause()
    assert sessions and sessions[0].closed  # leaving the chat frees the model


# -- the knowledge score ----------------------------------------------------------------------------
async def _open_train(pilot, app, run_dir) -> TrainScreen:
    app.state.run = RunHandle.attach(run_dir)
    app.goto("train")
    await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.screen.run_state.finished,
                   what="the finished run")
    return app.screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_dashboard_shows_the_knowledge_score_when_the_run_ends(tmp_path, size):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await _open_train(pilot, app, run_dir)
        await wait_for(pilot, lambda: "Knows 22 of 30 held-out facts (73 %)" in shown(app), what="the score")
        text = shown(app)
        # The three numbers on one line, the long form where it fits and a shorter one at 80 columns.
        base = "base model 1 (3 %)" if size[0] >= 100 else "base 1 (3 %)"
        assert re.search(rf"Knows 22 of 30 held-out facts \(73 %\) · {re.escape(base)} · open book 25 \(83 %\)",
                         text), text
        assert "Eval loss before 3.200 → after 1.520" in text  # still there, below it
        assert "Eval loss" in text.split("Knows 22 of 30")[1]
        assert screen.run_state.knowledge["questions"] == 30
        # The dev-question checks during training went to the log and the "now" panel.
        assert any("Dev questions at step 20: 5 of 8 right" in line for line in screen.run_state.log)
        assert "dev facts" in text and "62 %" in text


async def test_the_dashboard_shows_the_score_of_a_run_it_follows_live(tmp_path):
    notes = write_notes(tmp_path / "notes")
    gate = threading.Semaphore(0)
    launcher = ScriptedLauncher(tmp_path / "runs", max_steps=6, delay_s=0.0, gate=gate, knowledge=True)
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=launcher, max_steps=6)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_scripted_run(pilot, app)
        for _ in range(5):
            gate.release()
        await wait_for(pilot, lambda: "step 5 / 6" in shown(app), what="step 5")
        assert "Knows" not in shown(app)  # no score before the end
        gate.release()
        await wait_for(pilot, lambda: "Knows 22 of 30 held-out facts (73 %)" in shown(app), what="the score")
        assert "open book 25 (83 %)" in shown(app)


async def test_too_few_facts_is_said_on_the_dashboard_and_no_score_is_made_up(tmp_path):
    # No knowledge event; the done event carries an empty dict; run.json has the sentence.
    events = scripted_events(30)
    events[-1]["knowledge"] = {}
    run_dir = write_run(tmp_path / "runs", events, knowledge=FEW_FACTS_KNOWLEDGE)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_train(pilot, app, run_dir)
        await wait_for(pilot, lambda: "Too few facts to test" in shown(app), what="the sentence")
        text = shown(app)
        assert "Knowledge: Too few facts to test (3 checkable" in text
        assert "Knows" not in text and "held-out facts" not in text
        assert "Eval loss before 3.200 → after 1.520" in text


async def test_a_run_from_before_the_score_shows_no_knowledge_line(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_train(pilot, app, run_dir)
        await wait_for(pilot, lambda: "Eval loss before" in shown(app))
        assert not screen.query_one("#train-knowledge").display
        assert "Knowledge" not in shown(app)


async def test_chat_offers_the_held_out_questions_and_answers_them_side_by_side(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(80, 24)) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None,
                       what="the model")
        chat = app.screen
        await wait_for(pilot, lambda: "Knows 22 of 30 held-out facts; the base model knew 1" in shown(app),
                       what="the knowledge status line")
        await wait_for(pilot, lambda: "^n Held-out question" in shown(app), what="the key in the footer")
        text = shown(app)
        assert "(open book: 25)" in text and "3 held-out questions" in text
        options = chat.query_one("#chat-suggestions", OptionList)
        listed = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert [line.removeprefix("◆ ") for line in listed[:3]] == [p["question"] for p in SAMPLE_PROBES]
        box = chat.query_one("#chat-input", Input)
        # Picking one from the list puts it in the prompt box (nothing is sent yet).
        await pilot.press("ctrl+o", "down", "enter")
        await wait_for(pilot, lambda: box.value == SAMPLE_PROBES[1]["question"], what="the question in the prompt")
        assert box.has_focus and not chat.turns
        # ctrl+n goes on with the next held-out question, and wraps around.
        await pilot.press("ctrl+n")
        assert box.value == SAMPLE_PROBES[2]["question"]
        await pilot.press("ctrl+n")
        assert box.value == SAMPLE_PROBES[0]["question"]
        # Sent: the tuned and the base model answer side by side, each marked against the text.
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.turns and not chat.busy, what="both answers")
        turn = chat.turns[0]
        assert turn.sides == ("tuned", "base") and not chat.compare
        assert turn.correct == {"tuned": True, "base": False}
        text = shown(app)
        assert "tuned ✔ right" in text and "base model ✖ wrong" in text
        assert "From your text: The Tide Engine was built by Emeric Dallow in 1841." in text
        # A question of the user's own stays tuned-only (compare is off).
        await pilot.press(*"Tell me a story", "enter")
        await wait_for(pilot, lambda: len(chat.turns) == 2 and not chat.busy, what="the second answer")
        assert chat.turns[1].sides == ("tuned",) and chat.turns[1].probe is None


async def test_chat_on_a_run_without_held_out_questions(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30), knowledge=FEW_FACTS_KNOWLEDGE)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(80, 24)) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.session is not None)
        await wait_for(pilot, lambda: "No knowledge score: Too few facts" in shown(app) and "^b" in shown(app),
                       what="the sentence")
        assert "Held-out question" not in shown(app)  # the key is hidden: nothing to cycle through
        await pilot.press("ctrl+n")
        assert app.screen.query_one("#chat-input", Input).value == ""


def test_held_out_questions_fall_back_to_the_score_rows(tmp_path):
    run_dir = write_run(tmp_path / "runs", [], knowledge=SAMPLE_KNOWLEDGE)  # no knowledge_probes
    knowledge, probes = backend.run_knowledge(run_dir)
    assert [p["question"] for p in probes] == [p["question"] for p in SAMPLE_PROBES]
    assert probes[0]["span"] == "Emeric Dallow" and "rows" not in knowledge
    assert knowledge["tuned"] == pytest.approx(22 / 30)
    assert backend.run_knowledge(tmp_path / "nowhere") == (None, [])


def test_the_score_read_from_a_run_carries_what_was_kept_and_your_questions(tmp_path):
    run_dir = write_run(tmp_path / "runs", [], knowledge=SAMPLE_KNOWLEDGE)
    data = json.loads((run_dir / "run.json").read_text())
    data.update(general={"general_kept": 0.95, "general_perplexity_change": 0.04},
                person_questions={"questions": 25, "tuned": 0.4})
    (run_dir / "run.json").write_text(json.dumps(data))
    knowledge, _ = backend.run_knowledge(run_dir)
    assert knowledge["general_kept"] == 0.95 and knowledge["person_tuned"] == 0.4
    assert knowledge["person_questions"] == 25


# -- the real thing --------------------------------------------------------------------------------
async def test_full_walk_with_the_tiny_model(sample_data, tiny_model_dir):
    """Hardware (real probe) → data (sample) → plan → train 3 real steps → a streamed answer."""
    app = LLMCustomsApp(data=str(sample_data), model=str(tiny_model_dir), preset="highspeed", max_steps=3,
                        qa="offline", check_live_runs=False, cursor_blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "cores" in shown(app), timeout=60, what="the hardware probe")
        assert "RAM" in shown(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Ready to train" in shown(app) or "Usable" in shown(app), what="the data")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.state.plan is not None and tiny_model_dir.name in shown(app), timeout=30,
                       what="the plan")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), what="the dashboard")
        screen = app.screen
        steps_seen: set[int] = set()

        def finished() -> bool:
            steps_seen.add(screen.run_state.step)
            return screen.run_state.finished

        await wait_for(pilot, finished, timeout=120, what="the end of training")
        assert screen.run_state.status == "done", screen.run_state.log
        await wait_for(pilot, lambda: "step 3 / 3" in shown(app) and "Eval loss before" in shown(app))
        assert screen.query_one(LossChart).filled_columns(60) == 60
        assert max(steps_seen) == 3
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        await wait_for(pilot, lambda: app.screen.session is not None, timeout=60, what="the chat model")
        await pilot.press(*"What is the Tide Engine?", "enter")
        chat = app.screen
        await wait_for(pilot, lambda: not chat.busy, timeout=60, what="the answer")
        pane = chat.turns[0].answer("tuned")
        # The streamed answer replaced the placeholder. (A random tiny model may answer with blank lines,
        # so the text itself is not judged; an error would be shown in the pane instead.)
        text = str(pane.content)
        assert text not in ("", "…") and "error" not in text.lower()


def test_main_rejects_an_unknown_preset(capsys):
    assert main(["--preset", "turbo"]) == 2
    assert "turbo" in capsys.readouterr().err


def test_console_script_is_declared():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'llmcustoms-tui = "llmcustoms_tui.app:main"' in pyproject
    assert os.path.exists(Path(__file__).resolve().parents[2] / "llmcustoms_tui" / "app.tcss")


async def test_a_run_that_fails_early_says_why_on_the_dashboard(tmp_path):
    from llmcustoms.errors import DataError
    from llmcustoms_tui.launcher import ThreadLauncher

    def failing_training(request, stop=None, on_run=None):
        raise DataError("The folder notes has too little text to train on: add a few paragraphs.")

    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline",
                   launcher=ThreadLauncher(run_training=failing_training))
    async with app.run_test(size=(100, 30)) as pilot:
        await start_scripted_run(pilot, app)
        await wait_for(pilot, lambda: "too little text" in shown(app), what="the reason")
        assert "failed" in shown(app) and "Traceback" not in shown(app)
        assert app.is_running


class _GatedChat(FakeChatSession):
    """Streams one word each time the test releases the gate."""

    def __init__(self, run_dir: str) -> None:
        super().__init__(run_dir)
        self.gate = threading.Semaphore(0)

    def stream(self, prompt, tuned=True, max_new_tokens=200):
        for word in ("line\n" * 40).split("\n")[:40]:
            self.gate.acquire(timeout=10)
            yield word + "\n"


async def test_the_transcript_follows_the_answer_only_from_the_bottom(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30))
    sessions: list[_GatedChat] = []
    app = make_app(chat_factory=lambda path: sessions.append(_GatedChat(path)) or sessions[-1])
    async with app.run_test(size=(100, 30)) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: sessions and isinstance(app.screen, ChatScreen) and app.screen.session)
        await pilot.press(*"Say many lines", "enter")
        transcript = app.screen.query_one("#chat-transcript")
        for _ in range(25):
            sessions[0].gate.release()
        await wait_for(pilot, lambda: transcript.max_scroll_y > 0 and transcript.scroll_y == transcript.max_scroll_y,
                       what="the transcript following the answer")
        transcript.scroll_home(animate=False)  # the user scrolls up to read
        await pilot.pause()
        for _ in range(15):
            sessions[0].gate.release()
        await wait_for(pilot, lambda: not app.screen.busy, what="the end of the answer")
        await pilot.pause(0.2)
        assert transcript.scroll_y == 0  # not yanked back down


async def test_a_detached_run_that_cannot_start_says_why(tmp_path):
    from llmcustoms_tui.launcher import DetachedLauncher

    empty = tmp_path / "empty"
    empty.mkdir()
    app = make_app(launcher=DetachedLauncher())
    async with app.run_test(size=(100, 30)) as pilot:
        app.state.data_path = str(empty)  # as if the folder was emptied after the check
        app.start_run()
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        await wait_for(pilot, lambda: "failed" in shown(app) and ".txt" in shown(app), what="the reason")
        assert not app.state.run.alive and app.is_running


async def test_no_color_keeps_everything_readable(monkeypatch):
    """NO_COLOR: the app runs without colour; the gauges and marks still say it all in shapes."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "GPU 0" in shown(app) and "Next: data" in shown(app))
        text = shown(app)
        assert "[1 Hardware]" in text and "█" in text and "░" in text and "⚠" in text


async def test_chat_says_how_the_score_is_measured_when_there_is_room(tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(120, 40)) as pilot:
        app.state.chat_run_dir = str(run_dir)
        app.goto("chat")
        await wait_for(pilot, lambda: "Knows 22 of 30 held-out facts" in shown(app), what="the knowledge line")
        await wait_for(pilot, lambda: "learnt = held-out facts in words never trained on" in shown(app),
                       what="how it is measured")
