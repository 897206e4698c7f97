"""The model registry and cache: the embedded model, Hub downloads from a loopback server, resolving."""

from __future__ import annotations

import time

import pytest

from llmcustoms.errors import DownloadError, ModelNotFoundError
from llmcustoms.models.manager import COMPLETE_MARKER, ModelManager
from tests.helpers.hub_stub_server import HubStub


def test_embedded_model_is_cached_and_reloads_fast(embedded_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manager = ModelManager(cache_dir=embedded_model_dir.parent)
    assert manager.check_local_model("smollm2-135m")
    assert (embedded_model_dir / COMPLETE_MARKER).exists()
    assert manager.download_model("smollm2-135m") == str(embedded_model_dir)  # no second conversion
    started = time.time()
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    load_s = time.time() - started
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    assert load_s < 10  # loose: a guard against re-conversion, the real target lives in benchmarks
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0])


def test_unknown_model_name_is_one_sentence():
    with pytest.raises(ModelNotFoundError, match="Unknown model 'gpt-17'"):
        ModelManager().resolve("gpt-17")


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        ModelManager().resolve(str(tmp_path / "m"))


def test_registry_info_lists_every_model():
    names = [m["name"] for m in ModelManager().list_models()]
    assert {"smollm2-135m", "tinyllama"} <= set(names)
    info = ModelManager().get_model_info("tinyllama")
    assert info["hub_id"] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0" and info["cached"] is False


def test_download_from_a_hub_on_loopback(tiny_model_dir, tmp_path, monkeypatch):
    with HubStub("someone/tiny", tiny_model_dir) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        path = manager.download_model("someone/tiny")
    assert manager.check_local_model("someone/tiny")
    assert (tmp_path / "cache" / "someone--tiny" / "config.json").is_file()
    assert path == str(tmp_path / "cache" / "someone--tiny")
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(path).config.hidden_size == 64


def test_unreachable_hub_is_one_sentence_and_leaves_nothing_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    manager = ModelManager(cache_dir=tmp_path / "cache")
    with pytest.raises(DownloadError, match="Could not download someone/tiny"):
        manager._download_from_hub("someone/tiny", manager.cache_path("someone/tiny"), retries=2)
    assert not manager.check_local_model("someone/tiny")
