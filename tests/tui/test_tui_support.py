"""The chat screen's support line (issue 24): under each tuned answer the passage of the run's documents that
supports it, or that none does, and ctrl+r opening that passage amid its file's text — real files, a real
support index, a scripted chat session, driven by Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcustoms.support.index import clear_cache
from llmcustoms_tui.screens.chat import ChatScreen
from llmcustoms_tui.screens.source import SourceScreen
from tests.helpers.tui_fakes import (
    HARBOUR_TEXT,
    SAMPLE_KNOWLEDGE,
    SAMPLE_PROBES,
    FakeChatSession,
    add_documents,
    scripted_events,
    write_run,
)
from tests.helpers.tui_pilot import contents, make_app, open_chat, shown, wait_for

pytestmark = pytest.mark.anyio



def run_on(tmp_path: Path, text: str) -> Path:
    """A finished run (scripted) whose run.json says it trained on a folder holding ``text`` as harbour.txt."""
    clear_cache()
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    add_documents(run_dir, tmp_path / "docs", text)
    return run_dir


async def ask(pilot, app, run_dir: Path, question: str) -> ChatScreen:
    screen = await open_chat(pilot, app, run_dir)
    screen.query_one("#chat-input").value = question
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.turns and not screen.busy and screen.turns[-1].support is not None,
                   what="the answer and its support")
    await pilot.pause()
    return screen


async def test_a_supported_answer_shows_its_passage_and_ctrl_e_opens_it_in_context(tmp_path):
    run_dir = run_on(tmp_path, HARBOUR_TEXT)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, app, run_dir, "What is the Tide Engine?")
        [line] = contents(app, ".turn-support")
        assert line.startswith("↳ supported by harbour.txt, line 5 (paragraph 3): “The Tide Engine is the great ")
        assert "^r Source" in shown(app)  # the key is offered once an answer has a passage
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, SourceScreen), what="the source")
        passages = contents(app, ".source-passage")
        # the file's text around the passage, in order, the passage itself marked as the one
        assert passages[0] == "Quillhaven harbour" and passages[-1].startswith("At low tide")
        [the_one] = contents(app, ".source-passage.-the-one")
        assert "It was built by Emeric Dallow in 1841." in the_one
        assert "Supported by harbour.txt, line 5" in contents(app, "#source-title")[0]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the chat")


async def test_an_answer_no_passage_supports_says_so(tmp_path):
    run_dir = run_on(tmp_path, HARBOUR_TEXT.replace("Emeric Dallow", "Ada Morrow").replace("great clockwork", "old"))
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(pilot, app, run_dir, "What is the Tide Engine?")
        assert contents(app, ".turn-support") == ["↳ no passage of your documents supports this"]


async def test_with_the_base_model_beside_each_answer_carries_its_own_support_mark(tmp_path):
    """--compare's promise in the TUI: the base model's answer is marked like the tuned one."""
    run_dir = run_on(tmp_path, HARBOUR_TEXT)
    app = make_app(chat_factory=FakeChatSession)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_chat(pilot, app, run_dir)
        await pilot.press("ctrl+b")
        screen.query_one("#chat-input").value = "What is the Tide Engine?"
        await pilot.press("enter")
        turn_done = lambda: screen.turns and not screen.busy and screen.turns[-1].support is not None  # noqa: E731
        await wait_for(pilot, turn_done, what="both answers and their support")
        await pilot.pause()
        turn = screen.turns[-1]
        assert turn.sides == ("tuned", "base")
        assert str(turn.answer("tuned").border_subtitle).startswith("supported: harbour.txt, line 5")
        # The base model's guess ("a machine that uses the tides") is in no passage of the documents.
        assert turn.answer("base").border_subtitle == "no passage supports it"
        # The line under the turn stays the tuned answer's.
        assert contents(app, ".turn-support")[0].startswith("↳ supported by harbour.txt, line 5")
