"""Issue 15, the CLI's items: a damaged model is refused before a run exists (19), a model that can not be
downloaded is not planned as if it could (23), settings mean the same from every source (10), and the
CLI's loose ends (27): help for every option, "No GPU" once, attach's rate from live steps only, the
licence field, library FutureWarnings kept from the user, no "seed" in user-facing text."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcustoms.cli import build_parser, main
from tests.conftest import ROOT, SAMPLE_DATA
from tests.helpers.hub_stub_server import HubStub

CPU_HARDWARE = {"device": "cpu", "gpus": [], "cpu_count": 2, "ram_total_mb": 16384, "ram_available_mb": 12000}


def _closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens (the connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _runs_in(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


# -- 19: a damaged model folder is one sentence, before any run exists ---------------------------------
def _damage(folder: Path, how: str) -> str:
    """Damage the model ``folder`` as ``how`` says; returns a piece of the sentence expected."""
    if how == "config-not-json":
        (folder / "config.json").write_text('{"model_type": "llama", "hidden')
        return "config.json is not valid JSON"
    if how == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
            (folder / name).unlink(missing_ok=True)
        return "has no tokenizer"
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "t5"  # an encoder-decoder: no causal LM head to train
    (folder / "config.json").write_text(json.dumps(config))
    return "not a chat model"


@pytest.mark.parametrize("how", ["config-not-json", "no-tokenizer", "not-a-causal-lm"])
@pytest.mark.parametrize("detach", [False, True])
def test_a_damaged_model_is_one_sentence_and_no_run_is_made(how, detach, tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)
    expected = _damage(model, how)
    runs = tmp_path / "runs"
    argv = ["train", str(SAMPLE_DATA), "--model", str(model), "--qa", "offline", "--cpu", "--max-steps", "1",
            "--output-dir", str(runs)] + (["--detach"] if detach else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("error:") == 1, err
    assert "unexpected" not in err and "Traceback" not in err
    assert _runs_in(runs) == [], "no run folder may be left behind"


def test_the_plan_of_a_damaged_model_names_the_file_once(tiny_model_dir, tmp_path):
    from llmcustoms.core.planner import make_plan

    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)
    _damage(model, "config-not-json")
    plan = make_plan(str(model), "quality", hardware=CPU_HARDWARE)
    text = "\n".join(plan.summary_lines())
    assert not plan.available and "config.json" in plan.availability
    assert text.count("config.json") == 1, text  # not also glued into the reason
    assert "Invalid control character" not in text


# -- 23: a model that can not be downloaded is not planned as if it could ------------------------------
def test_the_plan_says_a_model_whose_host_is_unreachable_is_not_available(tmp_path, monkeypatch):
    from llmcustoms.core.planner import make_plan

    url = _closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", url)
    plan = make_plan("someone/tiny", "quality", hardware=CPU_HARDWARE)
    assert not plan.available and plan.offline_alternative == "smollm2-135m"
    assert url.removeprefix("http://") in plan.availability and "smollm2-135m" in plan.availability
    assert any("Not available" in line for line in plan.summary_lines())


def test_the_plan_approves_a_model_the_hub_will_serve(tiny_model_dir, monkeypatch):
    from llmcustoms.core.planner import make_plan

    with HubStub("someone/tiny", tiny_model_dir) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        plan = make_plan("someone/tiny", "quality", hardware=CPU_HARDWARE)
    assert plan.available and plan.availability == ""


def test_the_embedded_model_is_available_offline(monkeypatch):
    from llmcustoms.models.availability import model_availability

    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    availability = model_availability("smollm2-135m")
    assert availability.ok and availability.source in ("cache", "embedded")


@pytest.mark.parametrize("detach", [False, True])
def test_train_refuses_a_model_it_cannot_download_before_making_a_run(detach, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    runs = tmp_path / "runs"
    started = time.monotonic()
    argv = ["train", str(SAMPLE_DATA), "--model", "someone/tiny", "--qa", "offline", "--output-dir", str(runs)]
    assert main(argv + (["--detach"] if detach else [])) == 1
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "--model smollm2-135m" in err and "unexpected" not in err
    assert _runs_in(runs) == []
    assert time.monotonic() - started < 30, "a quick probe, not three download tries"


# -- 10: settings mean the same from every source -------------------------------------------------------
def _set(source: str, tmp_path: Path, monkeypatch, values: dict[str, str]) -> None:
    """Put ``values`` in the environment or in ./.env (the test's working folder)."""
    for key in values:
        monkeypatch.delenv(key, raising=False)
    if source == "environment":
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    else:
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")


@pytest.mark.parametrize("source", ["dotenv", "environment"])
def test_output_dir_and_cache_dir_from_either_source(source, tmp_path, monkeypatch, capsys):
    from llmcustoms.runs.rundir import RunDir

    runs, cache = tmp_path / "my-runs", tmp_path / "my-cache"
    _set(source, tmp_path, monkeypatch, {"OUTPUT_DIR": str(runs), "CACHE_DIR": str(cache)})
    made = RunDir.create("tiny", root=str(runs), status="done")
    assert main(["runs", "--json"]) == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [made.id]
    assert main(["models", "--json"]) == 0
    assert all(Path(m["cache_path"]).parent == cache for m in json.loads(capsys.readouterr().out))


def test_the_environment_wins_over_dotenv_and_the_flag_over_both(tmp_path, monkeypatch, capsys):
    from llmcustoms.paths import runs_dir
    from llmcustoms.runs.rundir import RunDir

    (tmp_path / ".env").write_text(f"OUTPUT_DIR={tmp_path / 'from-dotenv'}\n", encoding="utf-8")
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "from-env"))
    assert runs_dir() == tmp_path / "from-env"
    flagged = RunDir.create("tiny", root=str(tmp_path / "from-flag"), status="done")
    assert main(["runs", "--json", "--output-dir", str(tmp_path / "from-flag")]) == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [flagged.id]


@pytest.mark.parametrize("source", ["dotenv", "environment"])
def test_default_preset_from_either_source_plans_and_tunes(source, tmp_path, monkeypatch, capsys):
    from llmcustoms.core.fine_tuner import FineTuner

    _set(source, tmp_path, monkeypatch, {"DEFAULT_PRESET": "highspeed"})
    assert main(["hardware", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recommendation"]["preset"] == "highspeed"
    assert main(["hardware", "--json", "--preset", "bestaccuracy"]) == 0  # the flag wins
    assert json.loads(capsys.readouterr().out)["recommendation"]["preset"] == "bestaccuracy"
    assert FineTuner(str(SAMPLE_DATA), progress=False).preset == "highspeed"


@pytest.mark.parametrize("source", ["dotenv", "environment", "flags"])
def test_train_reads_every_setting_from_every_source(source, tiny_model_dir, tmp_path, monkeypatch, capsys):
    """DEFAULT_MODEL, DEFAULT_PRESET, MAX_STEPS and OUTPUT_DIR: a .env, the environment or flags, one meaning."""
    folder = tmp_path / "notes"
    shutil.copytree(SAMPLE_DATA, folder)
    runs = tmp_path / "runs-here"
    values = {"DEFAULT_MODEL": str(tiny_model_dir), "DEFAULT_PRESET": "highspeed", "MAX_STEPS": "2",
              "OUTPUT_DIR": str(runs)}
    argv = ["train", str(folder), "--qa", "offline", "--cpu", "--json"]
    if source == "flags":  # settings elsewhere say otherwise: the flags win
        _set("dotenv", tmp_path, monkeypatch, {"DEFAULT_MODEL": "no/such-model", "DEFAULT_PRESET": "quality",
                                               "MAX_STEPS": "7", "OUTPUT_DIR": str(tmp_path / "elsewhere")})
        argv += ["--model", str(tiny_model_dir), "--preset", "highspeed", "--max-steps", "2",
                 "--output-dir", str(runs)]
    else:
        _set(source, tmp_path, monkeypatch, values)
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    run = json.loads((Path(result["run_dir"]) / "run.json").read_text())
    assert Path(result["run_dir"]).parent == runs
    assert result["steps"] == 2 and run["preset"] == "highspeed"
    assert Path(run["model_path"]) == tiny_model_dir.resolve()


# -- 27: the CLI's loose ends ---------------------------------------------------------------------------
def _actions(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for _, inner in _actions(sub):
                    yield name, inner
        else:
            yield "llmcustoms", action


def test_every_option_has_help_and_no_help_says_seed_alone():
    for command, action in _actions(build_parser()):
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings or action.dest} has no help text"
        text = str(action.help).lower().replace("random seed", "")
        assert "seed" not in text, f"{command} {action.option_strings}: {action.help}"
    seed = next(a for c, a in _actions(build_parser()) if c == "train" and a.dest == "seed")
    assert "random seed" in seed.help


def test_models_and_hardware_never_say_seed(capsys):
    assert main(["models"]) == 0
    assert "seed" not in capsys.readouterr().out.lower()


def test_no_gpu_is_said_once_in_a_cpu_plan():
    from llmcustoms.core.planner import make_plan
    from llmcustoms.hardware.detector import NO_GPU_WARNING

    plan = make_plan("smollm2-135m", "quality", hardware={**CPU_HARDWARE, "warnings": [NO_GPU_WARNING]})
    text = " ".join(plan.summary_lines())
    assert text.count("No GPU") + text.count("No CUDA GPU") == 1, text


def _rates(output: str) -> list[float]:
    """Every step/s figure a tqdm bar printed."""
    import re

    return [float(m) for m in re.findall(r"([0-9.]+)step/s", output)]


def test_attach_shows_no_rate_for_replayed_steps_and_a_true_one_for_live_steps():
    from llmcustoms.runs.progress import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream=stream)
    an_hour_ago = time.time() - 3600
    for step in range(1, 41):  # an attach replays what the run wrote before
        printer({"kind": "step", "step": step, "max_steps": 100, "t": an_hour_ago + 60 * step})
    assert _rates(stream.getvalue()) == [], "replayed steps must not make a rate"
    time.sleep(0.5)
    printer({"kind": "step", "step": 41, "max_steps": 100, "t": time.time()})
    printer.close()
    rates = _rates(stream.getvalue())
    assert rates and rates[-1] < 10, rates  # one step in half a second, not 40 in no time


def test_the_first_live_step_makes_no_absurd_rate():
    from llmcustoms.runs.progress import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream=stream)
    printer({"kind": "step", "step": 1, "max_steps": 10, "t": time.time()})
    printer.close()
    assert all(rate < 1000 for rate in _rates(stream.getvalue())), stream.getvalue()


def test_attach_of_an_old_run_prints_no_rate(tmp_path, capsys):
    from llmcustoms.runs.events import JsonlEventSink, make_event
    from llmcustoms.runs.rundir import RunDir

    run = RunDir.create("tiny", root=str(tmp_path / "runs"), status="done")
    sink = JsonlEventSink(run.events_path)
    for step in range(1, 21):
        sink({**make_event("step", step=step, max_steps=20, loss=2.0), "t": time.time() - 600 + step})
    sink({**make_event("done", step=20, max_steps=20, message="Done."), "t": time.time() - 500})
    sink.close()
    assert main(["attach", run.id, "--output-dir", str(tmp_path / "runs")]) == 0
    assert _rates(capsys.readouterr().err) == []


def test_the_licence_is_an_spdx_string():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    assert not any("License ::" in c for c in project["project"].get("classifiers", []))


_WARNING_SCRIPT = ("import warnings, sys, llmcustoms.cli as cli\n"
                   "def models(args):\n"
                   "    warnings.warn('`old_arg` is deprecated and will be removed', FutureWarning)\n"
                   "    return 0\n"
                   "cli.cmd_models = models\n"
                   "sys.exit(cli.main(sys.argv[1:]))\n")


@pytest.mark.parametrize("debug", [False, True])
def test_library_future_warnings_reach_the_user_only_with_debug(debug, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run([sys.executable, "-c", _WARNING_SCRIPT, *(["--debug"] if debug else []), "models"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert ("FutureWarning" in result.stderr) == debug, result.stderr


# -- 20: a write that finds no room is the user's to fix, said in one sentence --------------------------
def _limit_file_size() -> None:
    """In the child: files may grow to 64 KB only (writes past it fail with EFBIG, as on a full disk)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_prepare_with_no_room_to_write_is_one_sentence_and_leaves_nothing(tmp_path):
    out = tmp_path / "examples.jsonl"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "llmcustoms.cli", "prepare", str(SAMPLE_DATA), "--qa", "offline",
                             "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=env, preexec_fn=_limit_file_size)
    assert result.returncode == 1, result.stderr
    assert "no room to write" in result.stderr and "unexpected" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".examples.jsonl*")), "nothing half written is left"


def test_auto_on_a_gpu_without_network_uses_the_embedded_model_at_once(embedded_model_dir, monkeypatch):
    """The hardware's choice can not be downloaded: one warning that says why, the embedded model, no retries."""
    from llmcustoms.hardware.detector import HardwareDetector
    from llmcustoms.training.choices import resolve_model

    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
    monkeypatch.setattr(HardwareDetector, "detect_gpu_memory", lambda self: 24 * 1024)  # as on a 24 GB card
    events: list[dict] = []
    started = time.monotonic()
    name, path = resolve_model("auto", "cuda", events.append)
    assert name == "smollm2-135m" and Path(path) == embedded_model_dir
    assert time.monotonic() - started < 2.5, "a quick probe, not three download tries"
    assert [e["kind"] for e in events] == ["warning"] and "cannot be reached" in events[0]["message"]


def test_chat_with_a_run_id_found_nowhere_says_where_it_looked(tmp_path, capsys):
    from llmcustoms.runs.rundir import RunDir

    elsewhere = RunDir.create("tiny", root=str(tmp_path / "other-runs"), status="done")  # not the default folder
    assert main(["chat", elsewhere.id, "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "No run" in err and "--output-dir" in err and "Unknown model" not in err, err


@pytest.mark.parametrize("source", ["dotenv", "environment"])
def test_the_wizard_starts_from_default_model_and_preset(source, tmp_path, monkeypatch):
    from llmcustoms_tui.app import LLMCustomsApp

    _set(source, tmp_path, monkeypatch, {"DEFAULT_PRESET": "highspeed", "DEFAULT_MODEL": "smollm2-135m"})
    app = LLMCustomsApp(data=None, hardware={"device": "cpu", "gpus": []})
    assert (app.state.model, app.state.preset) == ("smollm2-135m", "highspeed")
    chosen = LLMCustomsApp(data=None, model="tinyllama", preset="quality", hardware={"device": "cpu", "gpus": []})
    assert (chosen.state.model, chosen.state.preset) == ("tinyllama", "quality")  # explicit choices win


def test_the_plan_checks_a_model_folder_without_loading_torch(tiny_model_dir, tmp_path):
    """The TUI makes plans in its own process, which must stay free of torch (about 2 s and 1 GB)."""
    encoder = tmp_path / "an-encoder-decoder"
    shutil.copytree(tiny_model_dir, encoder)
    config = json.loads((encoder / "config.json").read_text())
    config.update(model_type="t5", architectures=["T5ForConditionalGeneration"])
    (encoder / "config.json").write_text(json.dumps(config))
    script = ("import json, sys\nfrom llmcustoms.core.planner import make_plan\n"
              f"hw = {CPU_HARDWARE!r}\n"
              f"good, bad = make_plan({str(tiny_model_dir)!r}, hardware=hw), make_plan({str(encoder)!r}, hardware=hw)\n"
              "print(json.dumps([good.available, bad.available, bad.availability, 'torch' in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    good, bad, why, torch_loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert good and not bad and "not a chat model" in why
    assert not torch_loaded
