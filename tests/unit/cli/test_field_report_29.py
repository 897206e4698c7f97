"""Issue 29, the CLI's items: a path that is not a run (1), an unusable runs folder (2), eval on a live run (3),
a run whose model folder is gone (4), stop on a finished run (5), and the loose ends of 6 (eval's "Loading…"
before a refusal, validate's sentence said twice, a damaged run in `runs`, GROQ_TIMEOUT checked at start-up).

Every case is the real command on real folders: one sentence, exit code 2, no "unexpected", no traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmcustoms.cli import main
from llmcustoms.runs.rundir import RunDir, RunLock
from tests.conftest import SAMPLE_DATA

PROBE = {"fact_id": "a.txt:0:0", "question": "Who founded Velmoria?", "reference": "Captain Orin Dask founded it.",
         "span": "Orin Dask", "context": "Captain Orin Dask founded Velmoria in 1742.", "trained_phrasings": 1}


def _one_sentence(err: str) -> None:
    assert err.count("error:") == 1, err
    assert "unexpected" not in err and "Traceback" not in err, err


def _run_with_adapter(root: Path, model_dir: Path, status: str = "done", **fields) -> RunDir:
    """A run on ``model_dir`` with a real (untrained) LoRA adapter and one held-out question."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = RunDir.create(model_dir.name, root=root, status=status, model_path=str(model_dir),
                        knowledge_probes=[PROBE], **fields)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(run.adapter_dir)
    return run


# -- 1: a path that holds no run is "No run found", not NotImplementedError ------------------------------
@pytest.mark.parametrize("command", [["eval"], ["export"], ["stop"], ["resume"], ["attach"]])
@pytest.mark.parametrize("where", ["data", "tmp"])
def test_a_run_command_given_a_folder_that_is_not_a_run_says_so(command, where, tmp_path, isolated_home, capsys):
    (isolated_home / "runs").mkdir()  # the default runs folder exists: the lookup there used to crash
    RunDir.create("tiny", status="done")
    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "data") if where == "data" else Path("/tmp")
    assert main([*command, str(folder)]) == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert f"No run found at {str(folder)!r}" in err, err


def test_a_prefix_of_an_id_still_finds_the_run(isolated_home, capsys):
    run = RunDir.create("tiny", status="done")
    assert RunDir.open(run.id[:10]) == run
    assert RunDir.open(str(run.path)).path == run.path.resolve()


# -- 2: an unusable runs folder names the setting and where it was set --------------------------------------
@pytest.mark.parametrize("source", ["dotenv", "environment", "flag"])
@pytest.mark.parametrize("bad", ["proc", "under-a-file"])
def test_an_unusable_output_dir_is_one_sentence_before_any_model(source, bad, tmp_path, monkeypatch, capsys):
    if bad == "proc":
        target = "/proc/llmcustoms-x"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        target = str(tmp_path / "a-file" / "runs")
    flag: list[str] = []
    if source == "dotenv":
        (tmp_path / ".env").write_text(f"OUTPUT_DIR={target}\n", encoding="utf-8")
        where = f"OUTPUT_DIR={target} (set in the .env file {(tmp_path / '.env').resolve()})"
    elif source == "environment":
        monkeypatch.setenv("OUTPUT_DIR", target)
        where = f"OUTPUT_DIR={target} (set in the environment)"
    else:
        flag, where = ["--output-dir", target], f"--output-dir {target}"
    # A model folder that does not exist: the runs folder is said first, before any model is looked at.
    argv = ["train", str(SAMPLE_DATA), "--model", str(tmp_path / "no-model"), "--qa", "offline", "--cpu", *flag]
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert where in err and "cannot be used" in err and "no-model" not in err, err

    assert main(["runs", *flag]) == 2  # not "No runs yet."
    out, err = capsys.readouterr()
    _one_sentence(err)
    assert where in err and "No runs yet" not in out, err


def test_runs_with_a_usable_missing_folder_says_no_runs_and_makes_nothing(tmp_path, capsys):
    target = tmp_path / "not-yet" / "runs"
    assert main(["runs", "--output-dir", str(target)]) == 0
    assert "No runs yet" in capsys.readouterr().out
    assert not (tmp_path / "not-yet").exists(), "a listing leaves no folder behind"


# -- 3: eval refuses a run that is still training, as export does ------------------------------------------
def test_eval_refuses_a_live_run_with_exports_sentence(tiny_model_dir, tmp_path, capsys):
    run = _run_with_adapter(tmp_path / "runs", tiny_model_dir, status="running")
    before = run.run_json.read_bytes()
    with RunLock(run):  # a process trains it now
        assert main(["eval", str(run.path)]) == 2
        eval_err = capsys.readouterr().err
        assert main(["export", str(run.path), "--format", "adapter"]) == 2
        export_err = capsys.readouterr().err
    _one_sentence(eval_err)
    assert "Loading" not in eval_err, eval_err
    assert f"Run {run.id} is still running; wait for it to finish (or stop it, which saves an adapter)" in eval_err
    assert eval_err.split(", then ")[0] == export_err.split(", then ")[0]  # the same sentence
    assert run.run_json.read_bytes() == before, "run.json is the trainer's to write"


# -- 4: a run whose base-model folder was deleted says so -----------------------------------------------------
def test_chat_with_a_run_whose_model_folder_is_gone_says_it_is_gone(tiny_model_dir, tmp_path, capsys):
    model = shutil.copytree(tiny_model_dir, tmp_path / "my-model")
    run = _run_with_adapter(tmp_path / "runs", model)
    shutil.rmtree(model)
    for argv in (["chat", str(run.path), "--prompt", "Hello?"], ["eval", str(run.path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        _one_sentence(err)
        assert f"the model folder this run was trained on, {model}, is gone" in err.lower(), err
        assert "Unknown model" not in err and "Loading" not in err


# -- 5: stop on a finished run says only that there is nothing to stop ----------------------------------------
def test_stop_on_a_finished_run_says_only_nothing_to_stop(tmp_path, capsys):
    run = RunDir.create("tiny", root=tmp_path / "runs", status="done")
    assert main(["stop", run.id, "--output-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "Stopping" not in err and "nothing to stop" in err, err


# -- 6: eval says nothing of loading before it refuses --------------------------------------------------------
@pytest.mark.parametrize("case", ["no-adapter", "damaged", "no-run", "no-questions"])
def test_eval_refuses_before_saying_it_loads(case, tiny_model_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    run = RunDir.create("tiny", root=root, status="done", model_path=str(tiny_model_dir), knowledge_probes=[PROBE])
    ref = str(run.path)
    if case == "damaged":
        run.adapter_dir.mkdir()
        run.run_json.write_text('{"status": "do')
    elif case == "no-run":
        ref = "20990101-nothing"
    elif case == "no-questions":
        run.adapter_dir.mkdir()
        run.update(knowledge_probes=None)
    assert main(["eval", ref, "--output-dir", str(root)]) == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "Loading" not in err, err


def test_validate_says_a_blocked_folders_sentence_once(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"\x00\x01binary")
    assert main(["validate", str(folder)]) == 2
    out = capsys.readouterr().out
    assert "error:" in out and out.count("contains binary data") == 1, out


def test_runs_shows_a_damaged_run_in_the_tables_words(tmp_path, capsys):
    root = tmp_path / "runs"
    good = RunDir.create("tiny", root=root, status="done", preset="quality")
    bad = RunDir.create("tiny", root=root, status="done")
    bad.run_json.write_text("{")
    assert main(["runs", "--output-dir", str(root)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(bad.id))
    assert "None" not in out and "damaged" in row and "?" not in row, out
    assert str(bad.run_json) in out  # the note says which file is damaged
    assert any(line.startswith(good.id) and "quality" in line for line in out.splitlines())


@pytest.mark.parametrize("source", ["dotenv", "environment"])
@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_groq_timeout_is_refused_at_start_up(source, value, tmp_path, monkeypatch, capsys):
    if source == "environment":
        monkeypatch.setenv("GROQ_TIMEOUT", value)
    else:
        (tmp_path / ".env").write_text(f"GROQ_TIMEOUT={value}\n", encoding="utf-8")
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    _one_sentence(err)
    assert "GROQ_TIMEOUT must be a number of seconds" in err, err


def test_a_good_groq_timeout_is_seconds(monkeypatch):
    from llmcustoms.utils.config import Settings

    monkeypatch.setenv("GROQ_TIMEOUT", "12.5")
    assert Settings.load().groq_timeout == 12.5
    assert json.loads(json.dumps(Settings.load().to_dict()))["GROQ_TIMEOUT"] == 12.5
