"""Shared fixtures: an isolated LLMCustoms home per test, the embedded model, a tiny random Llama.

The embedded model is converted once per session into a session cache (about 20 s) and shared;
the tiny model (hidden 64, 2 layers, SmolLM2's tokenizer) trains in milliseconds a step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
for _key in ("GROQ_API_KEY", "OUTPUT_DIR", "CACHE_DIR", "MAX_VRAM_GB", "FORCE_CPU", "DEFAULT_MODEL"):
    os.environ.pop(_key, None)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "examples" / "data"


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """A model cache shared by the whole session (the embedded model is converted once into it)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, session_cache) -> Path:
    """Every test gets its own LLMCUSTOMS_HOME (runs, logs) and shares the session's model cache."""
    home = tmp_path / "llmcustoms-home"
    home.mkdir()
    monkeypatch.setenv("LLMCUSTOMS_HOME", str(home))
    monkeypatch.setenv("CACHE_DIR", str(session_cache))
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def embedded_model_dir(session_cache) -> Path:
    """The embedded SmolLM2-135M converted to a safetensors folder (once per session)."""
    from llmcustoms.models.manager import ModelManager

    return ModelManager(cache_dir=session_cache).ensure_embedded()


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_model_dir, tmp_path_factory) -> Path:
    """A tiny random LlamaForCausalLM (hidden 64, 2 layers) with SmolLM2's tokenizer, saved to disk."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def sample_data(tmp_path) -> Path:
    """A copy of the bundled sample data (tests must never touch the original)."""
    target = tmp_path / "sample-data"
    shutil.copytree(SAMPLE_DATA, target)
    return target
