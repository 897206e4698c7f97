"""SVG snapshots of the five screens at 100×30 (pytest-textual-snapshot).

Everything shown is deterministic: a fixed hardware report, a data folder written here, a model
that is not on disk (so the preview does not depend on the model cache), a finished scripted run
with its knowledge score, and a scripted chat session asked a held-out question. Text cursors do not blink. Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from tests.helpers.documents import MARKDOWN, make_pdf
from tests.helpers.tui_fakes import (
    SAMPLE_KNOWLEDGE,
    SAMPLE_PROBES,
    FakeChatSession,
    add_documents,
    scripted_events,
    write_run,
)
from tests.helpers.tui_pilot import make_app, write_notes
from tests.helpers.tui_screens import (
    count_models_as_downloadable,
    show_chat_answer,
    show_data_preview,
    show_finished_run,
    show_plan,
)

SIZE = (100, 30)


def test_hardware_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE)


def test_data_screen(snap_compare, tmp_path):
    write_notes(tmp_path / "notes")  # the current folder is tmp_path: the tree and the path are relative
    # A mixed folder (issue 23): the table says what was read from the PDF and the Markdown file.
    make_pdf(tmp_path / "notes" / "guide.pdf")
    (tmp_path / "notes" / "ferry.md").write_text(MARKDOWN, encoding="utf-8")
    app = make_app(data="notes", model="tinyllama", qa="offline")
    assert snap_compare(app, terminal_size=SIZE, run_before=show_data_preview(app))


def test_plan_screen(snap_compare, tmp_path, monkeypatch):
    write_notes(tmp_path / "notes")
    # tinyllama is not on disk: the snapshot must not depend on whether this machine reaches the Hub.
    count_models_as_downloadable(monkeypatch)
    app = make_app(data="notes", model="tinyllama", qa="offline")
    assert snap_compare(app, terminal_size=SIZE, run_before=show_plan(app))


def test_train_screen(snap_compare, tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    app = make_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=show_finished_run(app, run_dir))


def test_chat_screen(snap_compare, tmp_path):
    run_dir = write_run(tmp_path / "runs", scripted_events(30, knowledge=True), knowledge=SAMPLE_KNOWLEDGE,
                        probes=SAMPLE_PROBES)
    add_documents(run_dir, tmp_path / "docs")  # the tuned answer's support line shows its passage (issue 24)
    app = make_app(chat_factory=FakeChatSession)
    # The first held-out question: tuned and base side by side.
    assert snap_compare(app, terminal_size=SIZE, run_before=show_chat_answer(app, run_dir))
