"""The data screen shows what the model will learn (issue 23): ``v`` opens each file's extracted text
(a PDF's without its running header), and the dataset report (lengths, duplicates, leakage) sits under
the totals — a real app, a real mixed folder, driven by Pilot."""

from __future__ import annotations

import json

import pytest

from llmcustoms.data.reader import validate_folder
from llmcustoms.training.dataset_check import folder_dataset_report
from llmcustoms_tui.screens.file_text import FileTextScreen
from tests.helpers.documents import RUNNING_HEADER, make_pdf
from tests.helpers.tui_pilot import contents, make_app, wait_for, write_notes

pytestmark = pytest.mark.anyio


def _folder(tmp_path):
    folder = write_notes(tmp_path / "notes")
    make_pdf(folder / "guide.pdf")
    lines = [json.dumps({"messages": [{"role": "user", "content": "Who rings the bell?"},
                                      {"role": "assistant", "content": "The warden rings it."}]})] * 2
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


async def _checked(pilot, app) -> None:
    await pilot.press("enter")  # hardware → data: the folder is checked
    await wait_for(pilot, lambda: app.state.report is not None and "Duplicates:" in contents(app, "#data-dataset")[0],
                   what="the dataset report")


async def test_v_shows_the_text_read_from_the_file_chosen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path)
    app = make_app(data="notes", model="tinyllama", qa="offline")
    async with app.run_test(size=(100, 30)) as pilot:
        await _checked(pilot, app)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, FileTextScreen), what="the file text view")
        # The first usable file (sorted): the chat examples, turn by turn.
        await wait_for(pilot, lambda: "user: Who rings the bell?" in contents(app, "#file-text")[0],
                       what="chat.jsonl's examples")
        await pilot.press("down")  # festival.txt
        await pilot.press("down")  # guide.pdf
        await wait_for(pilot, lambda: "Iskel valley" in contents(app, "#file-text")[0], what="the PDF's text")
        text = contents(app, "#file-text")[0]
        assert RUNNING_HEADER not in text and "Page 2" not in text  # what the model learns: no page furniture
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FileTextScreen), what="the view to close")


async def test_the_data_screen_reports_duplicates_and_lengths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path)
    app = make_app(data="notes", model="tinyllama", qa="offline")
    async with app.run_test(size=(100, 30)) as pilot:
        await _checked(pilot, app)
        shown_lines = contents(app, "#data-dataset")[0].splitlines()
    # The core's own report of the same folder, line for line (the notes repeat their sentences: duplicates).
    expected = folder_dataset_report(validate_folder(tmp_path / "notes"))
    assert expected is not None and expected.exact_duplicates > 0
    assert shown_lines == expected.short_lines()
    assert shown_lines[0].startswith("Lengths: all ") and "(estimated;" in shown_lines[0]
    assert f"Duplicates: {expected.exact_duplicates:,} exact" in shown_lines[1]


async def test_v_before_any_folder_is_checked_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(model="tinyllama", qa="offline")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await pilot.pause(0.2)
        app.screen.action_view_text()
        await pilot.pause(0.2)
        assert not isinstance(app.screen, FileTextScreen)
