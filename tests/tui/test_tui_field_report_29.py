"""Issue 29 in the wizard: the plan screen's table shows what will run on a CPU (7), and a run trained inside
the app (``--in-process``) keeps library warnings off the screen as the CLI does (8)."""

from __future__ import annotations

import warnings

import pytest

from llmcustoms_tui.launcher import ThreadLauncher
from llmcustoms_tui.screens.plan import PlanScreen
from tests.helpers.tui_fakes import FIXED_HARDWARE
from tests.helpers.tui_pilot import make_app, shown, start_scripted_run, wait_for, write_notes

pytestmark = pytest.mark.anyio

CPU_HARDWARE = {**FIXED_HARDWARE, "gpus": [], "device": "cpu", "cuda_available": False, "cuda_version": None,
                "warnings": []}


@pytest.mark.parametrize("bf16", [False, True])
async def test_the_cpu_plan_table_shows_what_will_run(bf16, tmp_path):
    write_notes(tmp_path / "notes")
    app = make_app(data="notes", model="smollm2-135m", qa="offline", hardware={**CPU_HARDWARE, "cpu_bf16": bf16})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.report is not None, what="the data check")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen) and app.state.plan is not None,
                       what="the plan")
        await pilot.pause()
        text = " ".join(shown(app).split())
        assert "lora_rank 8→16" in text  # the sentence says the CPU widens the adapter …
        assert "rank 16, alpha 32, lr 0.002" in text and "rank 8" not in text.replace("lora_rank 8", "")  # … and so does the table
        assert "Steps set by your data" in text and "Steps 300" not in text
        assert f"Runs as cpu, {'bf16 autocast' if bf16 else 'fp32'}" in text


async def test_in_process_training_keeps_library_warnings_off_the_screen(tmp_path, monkeypatch):
    warnings.simplefilter("always")  # as a user's Python does, not pytest's filterwarnings (which ignores them)
    shown_warnings: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown_warnings.append(str(message)))

    def training(request, stop=None, on_run=None):
        # What transformers and peft say on their way (a deprecation, a FutureWarning) while a run trains.
        warnings.warn("`old_arg` is deprecated and will be removed in v5", FutureWarning, stacklevel=2)
        warnings.warn("torch.cpu.amp.autocast(args...) is deprecated", DeprecationWarning, stacklevel=2)
        from llmcustoms.errors import DataError

        raise DataError("The folder notes has too little text to train on: add a few paragraphs.")

    notes = write_notes(tmp_path / "notes")
    app = make_app(data=str(notes), model="smollm2-135m", qa="offline", launcher=ThreadLauncher(run_training=training))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await start_scripted_run(pilot, app)
        await wait_for(pilot, lambda: screen.run_state.finished, what="the run's end")
    assert shown_warnings == [], shown_warnings
