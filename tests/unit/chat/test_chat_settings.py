"""Chat takes FORCE_CPU from the settings its entry point read (CLI, ``FineTuner``), so a ``.env`` that keeps
training on the CPU keeps chat there too. Each test loads the tiny random Llama for real, with torch told a
GPU is present: were the setting lost, the model would go to a CUDA device this machine does not have."""

from __future__ import annotations

import pytest

from llmcustoms.chat.session import ChatSession, chat_device
from llmcustoms.cli import main
from llmcustoms.core.fine_tuner import FineTuner
from llmcustoms.utils.config import Settings


def test_the_device_is_the_gpu_unless_the_settings_force_the_cpu():
    assert chat_device(Settings(), cuda_available=True) == "cuda"
    assert chat_device(Settings(force_cpu=True), cuda_available=True) == "cpu"
    assert chat_device(Settings(), cuda_available=False) == "cpu"


@pytest.fixture
def gpu_said_present_and_dotenv_forcing_cpu(tmp_path, monkeypatch) -> list[str]:
    """``./.env`` says FORCE_CPU=true (the environment does not); torch says a GPU is there. Returns the list
    each loaded chat's device is appended to."""
    import torch

    (tmp_path / ".env").write_text("FORCE_CPU=true\n", encoding="utf-8")  # the tests' cwd is tmp_path
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    devices: list[str] = []
    real_load = ChatSession.load

    def load(self: ChatSession) -> ChatSession:
        real_load(self)
        devices.append(str(self.model.device))
        return self

    monkeypatch.setattr(ChatSession, "load", load)
    return devices


@pytest.fixture
def settings_reads(monkeypatch) -> list[Settings]:
    """Every ``Settings.load()`` made while the test runs (the entry point's should be the only one)."""
    reads: list[Settings] = []
    real = Settings.load.__func__  # type: ignore[attr-defined]

    def load(cls, *args, **kwargs):
        reads.append(real(cls, *args, **kwargs))
        return reads[-1]

    monkeypatch.setattr(Settings, "load", classmethod(load))
    return reads


def test_a_dotenv_force_cpu_reaches_the_cli_chat(tiny_model_dir, gpu_said_present_and_dotenv_forcing_cpu,
                                                 settings_reads, capsys):
    assert main(["chat", str(tiny_model_dir), "--prompt", "Hello?", "--max-new-tokens", "2"]) == 0, \
        capsys.readouterr().err
    assert set(gpu_said_present_and_dotenv_forcing_cpu) == {"cpu"}
    assert len(settings_reads) == 1, "main read the settings once and chat used them"


def test_a_dotenv_force_cpu_reaches_the_fine_tuners_chat(tiny_model_dir, tmp_path,
                                                         gpu_said_present_and_dotenv_forcing_cpu, settings_reads):
    tuner = FineTuner(str(tmp_path), model=str(tiny_model_dir), progress=False)
    assert tuner.settings.force_cpu
    tuner.test_model(["Hello?"])
    assert set(gpu_said_present_and_dotenv_forcing_cpu) == {"cpu"}
    assert settings_reads == [tuner.settings], "the tuner read the settings once and its chat used them"
