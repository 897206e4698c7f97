"""``export --push-to-hub``: a real adapter export uploaded by huggingface_hub to a Hub on 127.0.0.1.

The stand-in Hub (tests/helpers/hub_stub_server.py) speaks the endpoints ``upload_folder`` calls for
small files; ``HF_ENDPOINT`` points at it, so nothing leaves the machine. Each fault — no token, a
refused token, a name that belongs to someone else, a connection dropped mid-commit, no terminal to
ask on — must be one sentence and an exit code, with nothing uploaded and the token never shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcustoms.cli import main
from llmcustoms.export.staging import MARKER
from tests.helpers.export_runs import make_run
from tests.helpers.hub_stub_server import HubStub

TOKEN = "hf_SeCrEtTokenForTests0123456789"
REPO = "alice/tiny-adapter"


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return make_run(tiny_model_dir, tmp_path_factory.mktemp("publish-runs")).path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A Hub on 127.0.0.1 that accepts TOKEN only; the user's saved login is out of reach."""
    import huggingface_hub.constants as constants

    served = tmp_path / "hub"
    served.mkdir()
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-login" / "token"))
    with HubStub(REPO, served) as stub:
        stub.token = TOKEN
        point_at(stub, monkeypatch)
        yield stub


def point_at(stub: HubStub, monkeypatch) -> None:
    """HF_ENDPOINT for the process, as a user sets it; huggingface_hub read its constant at import."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", stub.url)
    monkeypatch.setattr(constants, "ENDPOINT", stub.url)


def push(run_dir: Path, out: Path, *extra: str, repo: str = REPO) -> int:
    return main(["export", str(run_dir), "--format", "adapter", "--out", str(out), "--push-to-hub", repo, *extra])


def exported_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file() and p.name != MARKER}


def one_sentence_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_export_arrives_byte_identical_and_the_token_is_never_shown(hub, run_dir, tmp_path, capsys):
    out = tmp_path / "export"
    assert push(run_dir, out, "--private", "--yes") == 0
    shown = capsys.readouterr()
    sent = exported_files(out)
    assert "adapter_model.safetensors" in sent and "README.md" in sent
    assert exported_files(hub.folder) == sent, "every file arrives, byte for byte"
    assert not (hub.folder / MARKER).exists(), "the marker (local paths) stays home"
    assert hub.created == [{"name": "tiny-adapter", "organization": "alice", "visibility": "private",
                            "type": "model"}]
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}, "the token went to the Hub, and only there"
    assert f"{hub.url}/{REPO}" in shown.err and "private" in shown.err, "it says what goes where"
    assert f"Published {len(sent)} files" in shown.out
    assert TOKEN not in shown.out + shown.err
    assert not any(TOKEN in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())

    # Run again: the verified export is reused and the Hub already holds every file, so none is sent.
    assert push(run_dir, out, "--yes") == 0
    assert "already at" in capsys.readouterr().err
    assert len(hub.commits) == 1


def test_one_dropped_connection_is_retried_by_huggingface_hub(hub, run_dir, tmp_path, monkeypatch):
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)  # its back-off waits, not ours to test
    out = tmp_path / "export"
    hub.faults["commit"] = ["drop"]
    assert push(run_dir, out, "--yes") == 0
    assert [r for r in hub.requests if "/commit/" in r[1]] == [("POST", f"/api/models/{REPO}/commit/main")] * 2
    assert exported_files(hub.folder) == exported_files(out)


def test_a_connection_that_stays_broken_is_one_sentence_and_running_again_finishes(
        hub, run_dir, tmp_path, capsys, monkeypatch):
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    out = tmp_path / "export"
    hub.faults["commit"] = ["drop"] * 6  # one try and huggingface_hub's five retries
    assert push(run_dir, out, "--yes") == 1
    message = one_sentence_error(capsys.readouterr().err)
    assert "connection" in message and "run the same command again" in message
    assert hub.commits == [] and exported_files(hub.folder) == {}

    assert push(run_dir, out, "--yes") == 0
    assert "already at" in capsys.readouterr().err, "the verified export is reused, not written again"
    assert exported_files(hub.folder) == exported_files(out)


def test_no_token_is_one_sentence_before_anything_is_exported_or_sent(hub, run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    out = tmp_path / "export"
    assert push(run_dir, out, "--yes") == 2
    message = one_sentence_error(capsys.readouterr().err)
    assert "HF_TOKEN" in message and "hf auth login" in message
    assert hub.requests == [] and not out.exists()


def test_a_refused_token_is_one_sentence_before_the_export_and_without_the_token(hub, run_dir, tmp_path, capsys, monkeypatch):
    wrong = "hf_WrongTokenThatMustNotBeShown42"
    monkeypatch.setenv("HF_TOKEN", wrong)
    out = tmp_path / "export"
    assert push(run_dir, out, "--yes") == 2
    err = capsys.readouterr().err
    message = one_sentence_error(err)
    assert "refused" in message and "401" in message
    assert wrong not in err and hub.created == [] and hub.commits == []
    assert not out.exists(), "the token is checked before minutes of exporting"


def test_a_name_owned_by_someone_else_is_refused_in_one_sentence(tmp_path, run_dir, capsys, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "none"))
    served = tmp_path / "hub"
    served.mkdir()
    with HubStub("bob/tiny-adapter", served) as hub:  # bob's repository; the token is alice's
        hub.token = TOKEN
        point_at(hub, monkeypatch)
        assert push(run_dir, tmp_path / "export", "--yes", repo="bob/tiny-adapter") == 2
    message = one_sentence_error(capsys.readouterr().err)
    assert "403" in message and "someone else" in message and "alice/tiny-adapter" in message
    assert hub.created == [] and hub.commits == []


def test_without_a_terminal_and_without_yes_nothing_is_exported_or_sent(hub, run_dir, tmp_path, capsys):
    out = tmp_path / "export"
    assert push(run_dir, out) == 2  # pytest's stdin is not a terminal
    message = one_sentence_error(capsys.readouterr().err)
    assert "--yes" in message
    assert hub.requests == [] and not out.exists()


@pytest.mark.parametrize(("answer", "code"), [("n", 1), ("y", 0)])
def test_on_a_terminal_it_asks_first(hub, run_dir, tmp_path, capsys, monkeypatch, answer, code):
    import sys

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    out = tmp_path / "export"
    assert push(run_dir, out) == code
    err = capsys.readouterr().err
    assert "public" in err and f"{hub.url}/{REPO}" in err and "adapter_model.safetensors" in err
    if answer == "n":
        assert "Nothing was uploaded" in err
        assert hub.requests == [("GET", "/api/whoami-v2")], "only the token was checked; no file went out"
    else:
        assert exported_files(hub.folder) == exported_files(out)
