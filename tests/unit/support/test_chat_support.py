"""The support mark where answers are shown: ``llmcustoms chat`` (--prompt, --compare, --show-source) and
``FineTuner.test_model``, on a real run of the tiny random Llama over a small folder with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcustoms.chat.session import ChatSession
from llmcustoms.cli import main
from llmcustoms.core.fine_tuner import FineTuner
from llmcustoms.runs.rundir import RunDir
from llmcustoms.support.verdict import NO_SUPPORT
from tests.helpers.known_answers import write_folder

QUESTION = "Who opened the Brisca Museum?"
RIGHT = "Tomas Reed opened it in 1881."
WRONG = "Queen Amara opened it in 1950."


@pytest.fixture
def run(tiny_model_dir, tmp_path) -> Path:
    """A done run of the tiny Llama with a LoRA adapter, trained (as run.json says) on the known folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = write_folder(tmp_path)
    run = RunDir.create("tiny", root=tmp_path / "runs", status="done", model_path=str(tiny_model_dir),
                        data_path=str(folder))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(run.adapter_dir)
    return run.path


@pytest.fixture
def scripted(monkeypatch):
    """The tuned model says RIGHT and the base model WRONG (the model is still loaded for real)."""
    def stream(self, prompt, tuned=True, **_):
        yield RIGHT if tuned else WRONG
    monkeypatch.setattr(ChatSession, "stream", stream)


def test_chat_marks_every_answer_of_the_real_model(run, capsys):
    assert main(["chat", str(run), "--prompt", QUESTION, "--compare", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    tuned = next(i for i, line in enumerate(out) if line.startswith("tuned> "))
    base = next(i for i, line in enumerate(out) if line.startswith("base>  "))
    marks = [i for i, line in enumerate(out) if line.startswith("  ↳ ")]
    # random weights say nothing the documents hold: each answer (its text may span lines) is followed by
    # the "none" mark
    assert len(marks) == 2 and tuned < marks[0] < base < marks[1]
    assert {out[i] for i in marks} == {"  ↳ " + NO_SUPPORT}
    assert (run / "support" / "manifest.json").is_file()  # built in the run folder on first chat


def test_chat_shows_the_supporting_passage_and_show_source_prints_it_whole(run, scripted, capsys):
    assert main(["chat", str(run), "--prompt", QUESTION, "--compare"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[out.index(f"tuned> {RIGHT}") + 1].startswith(
        "  ↳ supported by notes/customs.txt, line 7 (paragraph 4): “The Brisca Museum was «opened» in «1881» by "
        "«Tomas» «Reed».")
    assert out[out.index(f"base>  {WRONG}") + 1] == "  ↳ " + NO_SUPPORT
    assert main(["chat", str(run), "--prompt", QUESTION, "--show-source"]) == 0
    out = capsys.readouterr().out
    assert "    ── notes/customs.txt, line 7 (paragraph 4)" in out
    assert "    │ The Brisca Museum was opened in 1881 by Tomas Reed. It keeps the logbooks of Admiral Noor" in out


def test_chat_says_once_that_the_documents_moved(run, scripted, capsys, tmp_path):
    (tmp_path / "docs").rename(tmp_path / "gone")
    assert main(["chat", str(run), "--prompt", QUESTION]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("no longer at") == 1
    assert NO_SUPPORT in captured.out


def test_test_model_returns_and_prints_the_support(run, scripted, capsys):
    answers = FineTuner.from_run(str(run)).test_model([QUESTION], compare=True)
    entry = answers[0]
    assert entry["support"]["supported"] is True and entry["support"]["file"] == "notes/customs.txt"
    assert entry["support"]["line"] == 7
    assert entry["base_support"]["supported"] is False
    out = capsys.readouterr().out
    assert "supported by notes/customs.txt, line 7" in out and NO_SUPPORT in out


def test_eval_verbose_lists_the_support_mark_of_each_tuned_answer(run, capsys):
    probe = {"fact_id": "f1", "question": QUESTION, "reference": "The Brisca Museum was opened in 1881 by Tomas Reed.",
             "span": "Tomas Reed", "context": "The Brisca Museum was opened in 1881 by Tomas Reed.",
             "trained_phrasings": []}
    RunDir(run).update(knowledge_probes=[probe])
    assert main(["eval", str(run), "--verbose", "--no-general"]) == 0
    out = capsys.readouterr().out
    assert f"✗ {QUESTION}" in out  # random weights do not say "Tomas Reed"
    assert f"    support: {NO_SUPPORT}" in out
