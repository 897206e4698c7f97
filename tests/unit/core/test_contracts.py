"""The typed contracts: settings read once, and each contract's dict round trip is byte-for-byte."""

from __future__ import annotations

import json

import pytest

from llmcustoms.hardware.detector import HardwareDetector
from llmcustoms.hardware.report import HardwareReport
from llmcustoms.runs.events import EVENT_KINDS, Event, make_event
from llmcustoms.runs.info import RunInfo
from llmcustoms.training.train_config import TrainConfig
from llmcustoms.utils import config as config_module
from llmcustoms.utils.config import Config, Settings


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCUSTOMS_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    for key in config_module.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_settings_precedence_defaults_home_cwd_env_overrides(isolated, monkeypatch):
    (isolated / "home" / ".env").write_text("DEFAULT_PRESET=highspeed\nLOG_LEVEL=debug\nMAX_STEPS=5\n")
    (isolated / ".env").write_text("LOG_LEVEL=warning\nMAX_STEPS=7\n")
    monkeypatch.setenv("MAX_STEPS", "9")
    settings = Settings.load({"GROQ_MODEL": "explicit"})
    assert settings.default_preset == "highspeed"  # home .env over the default
    assert settings.log_level == "WARNING"  # ./.env over home
    assert settings.max_steps == 9  # environment over both files
    assert settings.groq_model == "explicit"  # explicit choices over everything
    assert settings.to_dict() == Config().load_env_config({"GROQ_MODEL": "explicit"})
    assert Settings.from_dict(settings.to_dict()) == settings
    assert "gsk" not in repr(Settings.load({"GROQ_API_KEY": "gsk_secret"}))


def test_one_cli_command_reads_the_settings_once(isolated, monkeypatch, capsys):
    from llmcustoms import cli

    notes = isolated / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("The river Ord is 120 km long. It flows north into the sea. " * 20)
    calls = []
    real = config_module._resolve
    monkeypatch.setattr(config_module, "_resolve", lambda *a: calls.append(a) or real(*a))
    assert cli.main(["validate", str(notes)]) == 0
    assert len(calls) == 1
    calls.clear()
    cli.main(["hardware", "--json"])
    assert len(calls) == 1


def test_hardware_report_round_trip_is_detects_dict():
    detected = HardwareDetector().detect()
    report = HardwareReport.from_dict(detected)
    assert json.dumps(report.to_dict()) == json.dumps(detected)
    assert list(report.to_dict()) == list(detected)
    assert report.device == detected["device"] and report.cpu_count == detected["cpu_count"]


def test_train_config_keeps_keys_and_order():
    config = HardwareDetector().get_training_config("smollm2-135m", 0, preset="quality")
    config["health_stall_factor"] = 4.0
    typed = TrainConfig.from_dict(config)
    assert json.dumps(typed.to_dict()) == json.dumps(config)
    assert typed.per_device_train_batch_size == config["per_device_train_batch_size"]
    assert typed.extra == {"health_stall_factor": 4.0}
    assert typed["max_steps"] == config["max_steps"]


def test_events_typed_and_kinds_in_one_place():
    event = make_event("step", step=3, loss=float("nan"), lr=None)
    typed = Event.from_dict(event)
    assert typed.kind == "step" and typed.step == 3 and typed.to_dict() == event
    assert "lr" not in event and event["loss_nonfinite"] == "nan"
    assert Event.from_dict({"t": 1.0, "kind": "done", "status": "done"}).ends_run
    with pytest.raises(ValueError):
        Event.make("no_such_kind")
    import pathlib
    import re

    used = set()
    for path in (pathlib.Path(__file__).resolve().parents[3] / "llmcustoms").rglob("*.py"):
        used |= set(re.findall(r'make_event\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert used <= set(EVENT_KINDS)


def test_run_info_round_trip(tmp_path):
    from llmcustoms.runs.rundir import RunDir

    run = RunDir.create("smollm2-135m", root=tmp_path, status="created", config={"max_steps": 3})
    data = run.read()
    info = run.info()
    assert info.id == run.id and info.status == "created" and info.config == {"max_steps": 3}
    assert json.dumps(info.to_dict()) == json.dumps(data)
    assert RunInfo.from_dict(data) == info


def test_tui_plan_screen_reads_the_typed_plan():
    """The plan screen reads the core's Plan by attribute (no dict fallback)."""
    import inspect

    from llmcustoms.core.planner import Plan, make_plan
    from llmcustoms_tui.screens import plan as plan_screen

    plan = make_plan("smollm2-135m", "quality", hardware={"cpu_count": 2, "ram_available_mb": 16_000},
                     check_available=False)
    assert isinstance(plan, Plan) and isinstance(plan.config, TrainConfig)
    assert plan.to_dict()["config"] == plan.config.to_dict()
    source = inspect.getsource(plan_screen)
    assert "plan_value" not in source and "isinstance(plan, dict)" not in source
    assert plan_screen.PlanScreen.unavailable_text(plan) == ""
