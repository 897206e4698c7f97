"""Config precedence and checks, event files, run directories, presets."""

from __future__ import annotations

import json
import os
import threading

import pytest

from llmcustoms.errors import ConfigError, RunNotFoundError
from llmcustoms.planning.presets import (
    BESTACCURACY_CONFIG,
    HIGHSPEED_CONFIG,
    QUALITY_CONFIG,
    adapt_for_cpu,
    get_preset,
)
from llmcustoms.runs.events import JsonlEventSink, follow_events, make_event, read_events, read_new_events
from llmcustoms.runs.rundir import RunDir, list_runs
from llmcustoms.utils.config import Config, redact
from llmcustoms.utils.logger import Logger, scrub


def test_seed_preset_numbers_are_kept_exactly():
    assert HIGHSPEED_CONFIG == {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                                "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "max_steps": 100,
                                "lora_rank": 4, "lora_alpha": 8}
    assert QUALITY_CONFIG["max_steps"] == 300 and QUALITY_CONFIG["lora_rank"] == 8
    assert BESTACCURACY_CONFIG["gradient_accumulation_steps"] == 8 and BESTACCURACY_CONFIG["lora_alpha"] == 32


def test_get_preset_is_a_copy_and_unknown_names_are_refused():
    preset = get_preset("Quality")
    preset["max_steps"] = 1
    assert QUALITY_CONFIG["max_steps"] == 300
    with pytest.raises(ConfigError, match="Unknown preset 'ultra'"):
        get_preset("ultra")


def test_cpu_adaptation_shortens_and_says_so():
    adapted, note = adapt_for_cpu(get_preset("bestaccuracy"))
    assert adapted["max_seq_len"] == 256 and "max_seq_len 1024→256" in note and "CPU" in note
    # The steps come from the data on a CPU (budget.py), not from a fixed number: the preset says how many
    # passes and minutes, and the note says so.
    assert adapted["budget_by_data"] and adapted["budget_epochs"] == 10.0 and adapted["budget_minutes"] == 30.0
    assert "Steps are set by your data (10 passes over the examples, at most 30 min" in note
    assert adapted["learning_rate"] >= 2e-3 and adapted["lora_rank"] >= 16


def test_config_precedence_env_over_local_dotenv_over_home_dotenv(tmp_path, isolated_home, monkeypatch):
    (isolated_home / ".env").write_text("DEFAULT_PRESET=bestaccuracy\nLOG_LEVEL=debug\nGROQ_MODEL=home-model\n")
    (tmp_path / ".env").write_text("DEFAULT_PRESET=highspeed\nGROQ_MODEL=local-model\n")
    monkeypatch.setenv("GROQ_MODEL", "env-model")
    config = Config(cwd=tmp_path).load_env_config()
    assert config["DEFAULT_PRESET"] == "highspeed"  # ./.env beats ~/.llmcustoms/.env
    assert config["LOG_LEVEL"] == "DEBUG"  # only the home file sets it
    assert config["GROQ_MODEL"] == "env-model"  # the environment beats both files
    assert Config(cwd=tmp_path).load_env_config({"GROQ_MODEL": "flag"})["GROQ_MODEL"] == "flag"
    assert "GROQ_MODEL" not in os.environ or os.environ["GROQ_MODEL"] == "env-model"  # nothing written back


@pytest.mark.parametrize("key,value,message", [
    ("FORCE_CPU", "maybe", "FORCE_CPU must be true or false"),
    ("MAX_VRAM_GB", "lots", "MAX_VRAM_GB must be a number"),
    ("DEFAULT_PRESET", "turbo", "DEFAULT_PRESET must be one of"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
    ("GROQ_BASE_URL", "api.groq.com", "must start with http"),
    ("MAX_STEPS", "-3", "MAX_STEPS must be above 0"),
])
def test_bad_settings_are_one_sentence(monkeypatch, key, value, message):
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        Config().load_env_config()


def test_typed_values(monkeypatch):
    monkeypatch.setenv("FORCE_CPU", "yes")
    monkeypatch.setenv("MAX_VRAM_GB", "4")
    config = Config().load_env_config()
    assert config["FORCE_CPU"] is True and config["MAX_VRAM_GB"] == 4.0
    assert Config().validate_config(config) is True
    assert Config().merge_configs({"a": None, "b": 2}, {"a": 1, "b": 1}) == {"a": 1, "b": 2}


def test_secrets_are_redacted_and_scrubbed(monkeypatch, isolated_home):
    key = "gsk_" + "A1b2C3d4" * 4
    monkeypatch.setenv("GROQ_API_KEY", key)
    config = Config().load_env_config()
    assert redact(config)["GROQ_API_KEY"] == "set"
    assert key not in scrub(f"calling with {key}")
    logger = Logger("llmcustoms.test-secret").setup_logger("INFO", console=False)
    logger.info("key is %s", key)
    for handler in logger.handlers:
        handler.flush()
    logs = "".join(p.read_text() for p in (isolated_home / "logs").glob("*.log"))
    assert "key is ***" in logs and key not in logs


def test_event_sink_and_incremental_reader(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlEventSink(path)
    sink(make_event("start", step=0, max_steps=3))
    events, offset = read_new_events(path, 0)
    assert [e["kind"] for e in events] == ["start"]
    with open(path, "a") as handle:  # a half-written line must wait for its end
        handle.write('{"kind": "step", "st')
    assert read_new_events(path, offset) == ([], offset)
    with open(path, "a") as handle:
        handle.write('ep": 1}\n')
    events, offset = read_new_events(path, offset)
    assert events == [{"kind": "step", "step": 1}]
    sink(make_event("done", step=3, loss=None))
    assert "loss" not in read_events(path)[-1]


def test_follow_events_ends_at_done(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonlEventSink(path)

    def writer():
        for step in range(1, 4):
            sink(make_event("step", step=step))
        sink(make_event("done", step=3))

    threading.Thread(target=writer).start()
    kinds = [e["kind"] for e in follow_events(path, poll_s=0.01)]
    assert kinds == ["step", "step", "step", "done"]


def test_run_dirs_are_unique_and_found_by_id_or_prefix(tmp_path):
    first = RunDir.create("Some/Model", root=tmp_path, preset="quality")
    second = RunDir.create("Some/Model", root=tmp_path, preset="quality")
    assert first.path != second.path and "some-model" in first.id
    assert json.loads(first.run_json.read_text())["status"] == "created"
    assert RunDir.open(first.id, root=tmp_path).path == first.path
    assert RunDir.open(str(second.path)).path == second.path
    first.update(status="done")
    assert first.read()["status"] == "done" and first.read()["preset"] == "quality"
    assert [r.path for r in list_runs(tmp_path)] == sorted([first.path, second.path])
    with pytest.raises(RunNotFoundError, match="No run found"):
        RunDir.open("nope", root=tmp_path)


def test_the_seeds_logger_records_progress_and_hardware_in_the_log_file(tmp_path, monkeypatch):
    """``Logger.log_training_progress`` / ``log_hardware_info`` (the seed's API) write one line each to the log."""
    monkeypatch.setenv("LLMCUSTOMS_HOME", str(tmp_path / "home"))
    seed_logger = Logger("llmcustoms.test-seed-api")
    seed_logger.setup_logger("INFO", console=False)
    seed_logger.log_training_progress({"step": 3, "loss": 1.234567, "t": 99.0})
    seed_logger.log_hardware_info({"device": "cpu", "ram_gb": 24})
    for handler in seed_logger.logger.handlers:
        handler.flush()
    text = "".join(p.read_text() for p in (tmp_path / "home").rglob("*.log"))
    assert "progress step=3 loss=1.235" in text and "t=99" not in text
    assert "hardware {'device': 'cpu', 'ram_gb': 24}" in text
