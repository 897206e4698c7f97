"""Nothing of the user's text goes to the Q&A server unless the user said yes (issue 15, item 2).

With GROQ_API_KEY set and ``--qa auto`` (the default) training used to send every chunk without
showing the plan or asking. The server here is a real HTTP server on 127.0.0.1
(tests/openai_stub_server.py); every test counts the requests it received.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from llmcustoms.training.prepare import prepare_data
from llmcustoms.training.request import TrainRequest, request_from_run
from tests.helpers.openai_stub_server import StubServer

FAKE_KEY = "gsk_test_consent_0123456789abcdefghij"
PROSE = ("The island of Velmoria was founded by Admiral Teodora Vask in 1742. Its capital is Quillhaven, a "
         "harbour city known for its blue lighthouses. The currency is the brisk, divided into 100 pennets. "
         "Every spring the Festival of Drifting Lanterns is held on the Amberline River. ")


@pytest.fixture
def server(monkeypatch):
    """The stub server, with GROQ_API_KEY and GROQ_BASE_URL pointing every generator at it."""
    with StubServer() as stub:
        monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
        monkeypatch.setenv("GROQ_BASE_URL", stub.base_url)
        monkeypatch.setenv("GROQ_MODEL", "stub-model")
        yield stub


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    for index in range(3):
        (folder / f"part{index}.txt").write_text(
            (PROSE * 4).replace("1742", str(1742 + index)) + "\n\nQuestion: Who founded Velmoria?\n"
            "Answer: Admiral Teodora Vask.\n", encoding="utf-8")
    return folder


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal and answers ``input()`` with ``answer``."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer + "\n")

    def isatty(self) -> bool:
        return True


# -- the trainer: prepare_data ------------------------------------------------------------------------
def test_training_without_consent_sends_nothing_and_says_how_to_allow_it(server, notes, tokenizer):
    messages: list[str] = []
    data = prepare_data(TrainRequest(data_path=str(notes)), tokenizer, 256, messages.append)
    assert server.requests == [], "text was sent to the server without consent"
    assert data.qa_mode == "offline" and data.train_rows
    note = next(m for m in messages if m.startswith("Not sending your text"))
    assert "--yes" in note and "--qa offline" in note


def test_training_with_consent_or_a_yes_from_confirm_sends(server, notes, tokenizer):
    data = prepare_data(TrainRequest(data_path=str(notes), send_consent=True), tokenizer, 256, lambda m: None)
    assert server.requests and data.qa_mode == "groq"


def test_the_confirm_callback_sees_the_plan_and_decides(server, notes, tokenizer, monkeypatch, tmp_path):
    plans = []

    def refuse(plan) -> bool:
        plans.append(plan.describe())
        return False

    data = prepare_data(TrainRequest(data_path=str(notes), confirm=refuse), tokenizer, 256, lambda m: None)
    assert server.requests == [] and data.qa_mode == "offline"
    assert len(plans) == 1 and "to send" in plans[0] and "stub-model" in plans[0]

    monkeypatch.setenv("LLMCUSTOMS_HOME", str(tmp_path / "fresh-home"))  # an empty Q&A cache
    data = prepare_data(TrainRequest(data_path=str(notes), confirm=lambda plan: True), tokenizer, 256,
                        lambda m: None)
    assert server.requests and data.qa_mode == "groq"


def test_consent_is_recorded_for_a_detached_or_resumed_run_and_confirm_is_not(tmp_path):
    from llmcustoms.runs.rundir import RunDir

    request = TrainRequest(data_path="notes", send_consent=True, confirm=lambda plan: True)
    recorded = request.to_dict()
    assert recorded["send_consent"] is True and "confirm" not in recorded and "callbacks" not in recorded
    json.dumps(recorded)
    run = RunDir.create("m", root=tmp_path / "runs", status="created", request=recorded)
    again = request_from_run(run)
    assert again.send_consent is True and again.confirm is None


def test_the_plan_is_worked_out_without_sending(server, notes):
    from llmcustoms.training.prepare import generation_plan

    plan = generation_plan(TrainRequest(data_path=str(notes)))
    assert plan is not None and plan.to_send > 0 and server.requests == []
    assert generation_plan(TrainRequest(data_path=str(notes), qa="offline")) is None


# -- the command line -----------------------------------------------------------------------------------
def _train_args(notes: Path, model: Path, runs: Path, *extra: str) -> list[str]:
    return ["train", str(notes), "--model", str(model), "--preset", "highspeed", "--max-steps", "1", "--cpu",
            "--json", "--output-dir", str(runs), *extra]


def test_cli_train_with_no_terminal_and_no_yes_sends_nothing(server, notes, tiny_model_dir, tmp_path, capsys,
                                                             monkeypatch):
    from llmcustoms.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    assert main(_train_args(notes, tiny_model_dir, tmp_path / "runs")) == 0
    captured = capsys.readouterr()
    assert server.requests == [], "train sent text without --yes and without a terminal to ask"
    assert "--yes" in captured.err and "Not sending your text" in captured.err
    run_json = json.loads(Path(json.loads(captured.out)["run_dir"], "run.json").read_text())
    assert run_json["qa_mode"] == "offline" and run_json["request"]["send_consent"] is False


def test_cli_train_with_yes_sends_and_records_the_consent(server, notes, tiny_model_dir, tmp_path, capsys,
                                                          monkeypatch):
    from llmcustoms.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(_train_args(notes, tiny_model_dir, tmp_path / "runs", "--yes")) == 0
    captured = capsys.readouterr()
    assert server.requests, "--yes must let train send the text"
    assert "to send" in captured.err  # the plan is shown, as by prepare
    run_json = json.loads(Path(json.loads(captured.out)["run_dir"], "run.json").read_text())
    assert run_json["qa_mode"] == "groq" and run_json["request"]["send_consent"] is True


def test_cli_train_at_a_terminal_shows_the_plan_and_asks_before_detaching(server, notes, tiny_model_dir,
                                                                          tmp_path, capsys, monkeypatch):
    import llmcustoms.training.detach as detach
    from llmcustoms.cli import main

    started: list[TrainRequest] = []

    def fake_start(request):
        started.append(request)
        return detach.create_detached_run(request)  # recorded, not run

    monkeypatch.setattr(detach, "start_detached", fake_start)
    for answer, consent, qa in (("n", False, "offline"), ("y", True, "auto")):
        monkeypatch.setattr("sys.stdin", _Terminal(answer))
        assert main(_train_args(notes, tiny_model_dir, tmp_path / "runs", "--detach")) == 0
        captured = capsys.readouterr()
        assert "to send" in captured.err and "Send these chunks to the server?" in captured.out
        request = started[-1]
        assert request.send_consent is consent and request.qa == qa
        recorded = json.loads(Path(json.loads(captured.out.split("[y/N] ", 1)[1])["run_dir"], "run.json")
                              .read_text())["request"]
        assert recorded["send_consent"] is consent
    assert server.requests == [], "asking must not send anything"


# -- FineTuner ------------------------------------------------------------------------------------------
def test_finetuner_sends_only_with_allow_send(server, notes, tiny_model_dir, monkeypatch, tmp_path):
    from llmcustoms import FineTuner

    FineTuner(str(notes), model=str(tiny_model_dir), progress=False).prepare_data()
    assert server.requests == [], "FineTuner sent text without allow_send"
    monkeypatch.setenv("LLMCUSTOMS_HOME", str(tmp_path / "fresh-home"))
    FineTuner(str(notes), model=str(tiny_model_dir), progress=False, allow_send=True).prepare_data()
    assert server.requests
    assert FineTuner(str(notes), allow_send=True)._request().send_consent is True
