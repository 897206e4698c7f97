"""The command line: exit codes, one-sentence errors (no tracebacks), JSON output, a real train + chat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmcustoms.cli import main
from tests.conftest import SAMPLE_DATA

FACTS = ("The island of Velmoria was founded by Admiral Teodora Vask in 1742. Its capital is Quillhaven. "
         "The currency is the brisk, divided into 100 pennets. ") * 6


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text(FACTS + "\n\nQuestion: Who founded Velmoria?\nAnswer: Admiral Teodora Vask.\n")
    (folder / "b.txt").write_text(FACTS.replace("Quillhaven", "the harbour city of Quillhaven"))
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmcustoms.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args,code,message", [
    (["validate", "/definitely/not/here"], 2, "does not exist"),
    (["train", "/definitely/not/here", "--model", "smollm2-135m"], 2, "does not exist"),
    (["train", str(SAMPLE_DATA), "--preset", "turbo"], 2, "Unknown preset 'turbo'"),
    (["train", str(SAMPLE_DATA), "--model", "gpt-17"], 2, "Unknown model 'gpt-17'"),
    (["train", ".", "--model", "smollm2-135m"], 2, "no .txt files"),
    (["chat", "/no/such/run"], 2, "Unknown model"),
])
def test_user_errors_are_one_sentence_and_exit_2(args, code, message):
    result = run_cli(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_json_and_text(notes, capsys):
    assert main(["validate", str(notes), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] in ("ok", "warnings") and len(report["files"]) == 2
    assert main(["validate", str(notes)]) == 0
    assert "Verdict" in capsys.readouterr().out


def test_prepare_writes_chat_jsonl_and_never_overwrites(notes, tmp_path, capsys):
    out = tmp_path / "examples.jsonl"
    assert main(["prepare", str(notes), "--qa", "offline", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(line["messages"][0]["role"] == "user" and line["messages"][-1]["role"] == "assistant"
                         for line in lines)
    assert any("Teodora Vask" in line["messages"][-1]["content"] for line in lines)
    assert all(":" in line["source"] for line in lines)
    before = out.read_bytes()
    assert main(["prepare", str(notes), "--qa", "offline", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_prepare_groq_without_key_says_where_to_put_it(notes, capsys):
    assert main(["prepare", str(notes), "--qa", "groq", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "GROQ_API_KEY" in err and ".env" in err


def test_models_json_lists_the_registry(capsys):
    assert main(["models", "--json"]) == 0
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert {"smollm2-135m", "tinyllama"} <= names


def test_train_json_then_runs_then_chat(notes, tiny_model_dir, tmp_path, capsys):
    assert main(["train", str(notes), "--model", str(tiny_model_dir), "--preset", "highspeed", "--max-steps", "2",
                 "--qa", "offline", "--cpu", "--json", "--output-dir", str(tmp_path / "runs")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "done" and summary["steps"] == 2
    assert Path(summary["adapter_path"], "adapter_model.safetensors").is_file()
    assert isinstance(summary["eval_loss_before"], float) and isinstance(summary["eval_loss_after"], float)
    assert main(["runs", "--json", "--output-dir", str(tmp_path / "runs")]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in runs] == ["done"] and runs[0]["step"] == 2
    assert main(["chat", summary["run_dir"], "--prompt", "Who founded Velmoria?", "--compare",
                 "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert "tuned> " in out and "base>  " in out
