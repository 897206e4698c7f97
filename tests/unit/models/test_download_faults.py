"""Hub downloads against a loopback server that misbehaves: drops, 500s, truncated bodies, wrong sizes.

Expected: retries and resumes where possible; otherwise one clear sentence; never a half-written
model in the cache that ``check_local_model`` would call complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmcustoms.errors import DownloadError
from llmcustoms.models.manager import COMPLETE_MARKER, ModelManager
from tests.helpers.hub_stub_server import HubStub

REPO = "someone/tiny"
WEIGHTS = "model.safetensors"


def _recording(hub: HubStub) -> list[tuple[str, str, str | None]]:
    """Record (method, file, Range header) of every file request the stub serves."""
    seen: list[tuple[str, str, str | None]] = []
    base = hub.server.RequestHandlerClass

    class Recording(base):  # type: ignore[misc, valid-type]
        def _serve(self, head: bool) -> None:
            if "/resolve/" in self.path:
                seen.append((self.command, self.path.rsplit("/", 1)[-1], self.headers.get("Range")))
            super()._serve(head)

    hub.server.RequestHandlerClass = Recording
    return seen


def _assert_nothing_complete(manager: ModelManager) -> None:
    assert not manager.check_local_model(REPO)
    assert not manager.cache_path(REPO).exists()
    for leftover in manager.cache_dir.iterdir():  # the staging folder may stay, to resume from later
        assert not manager.check_local_model(leftover), f"{leftover} must not pass for a model"
        assert not (leftover / COMPLETE_MARKER).exists()


@pytest.mark.parametrize("fault", ["drop", "500", "truncate", "wrong_size"])
def test_a_fault_once_is_survived_and_the_model_is_whole(fault, tiny_model_dir, tmp_path, monkeypatch):
    with HubStub(REPO, tiny_model_dir) as hub:
        requests = _recording(hub)
        hub.faults[WEIGHTS] = [fault]
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        path = Path(manager.download_model(REPO))
    assert manager.check_local_model(REPO)
    assert (path / WEIGHTS).read_bytes() == (tiny_model_dir / WEIGHTS).read_bytes()
    assert len([r for r in requests if r[:2] == ("GET", WEIGHTS)]) == 2, "one failed transfer, one good one"


def test_a_dropped_connection_resumes_where_it_broke_off(tiny_model_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    served = tmp_path / "served"
    shutil.copytree(tiny_model_dir, served)
    # huggingface_hub writes in 10 MB chunks: a 24 MB file dropped halfway has one whole chunk to keep.
    save_file({"extra": torch.zeros(6 * 2**20)}, str(served / "extra.safetensors"))
    with HubStub(REPO, served) as hub:
        requests = _recording(hub)
        hub.faults["extra.safetensors"] = ["drop"]
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        path = Path(manager.download_model(REPO))
    gets = [r for r in requests if r[:2] == ("GET", "extra.safetensors")]
    assert [r[2] for r in gets] == [None, f"bytes={10 * 2**20}-"]
    assert (path / "extra.safetensors").read_bytes() == (served / "extra.safetensors").read_bytes()
    assert manager.check_local_model(REPO)


def test_a_server_that_keeps_failing_is_one_sentence_and_nothing_complete(tiny_model_dir, tmp_path, monkeypatch):
    with HubStub(REPO, tiny_model_dir) as hub:
        hub.faults[WEIGHTS] = ["500"] * 20
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        with pytest.raises(DownloadError) as caught:
            manager._download_from_hub(REPO, manager.cache_path(REPO), retries=2)
    message = str(caught.value)
    assert message.startswith(f"Could not download {REPO} from the Hugging Face Hub after 2 tries")
    assert "500" in message and "--model smollm2-135m" in message and "\n" not in message
    _assert_nothing_complete(manager)


def test_a_connection_that_keeps_breaking_is_one_sentence_not_a_traceback(tiny_model_dir, tmp_path, monkeypatch):
    with HubStub(REPO, tiny_model_dir) as hub:
        hub.faults[WEIGHTS] = ["wrong_size"] * 20  # every response promises 7 bytes it never sends
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        with pytest.raises(DownloadError, match=f"Could not download {REPO}.*after 1 tries"):
            manager._download_from_hub(REPO, manager.cache_path(REPO), retries=1)
    _assert_nothing_complete(manager)


def test_a_damaged_file_served_whole_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    # The server itself holds a cut-off weights file: every HTTP check passes, the content does not.
    served = tmp_path / "served"
    shutil.copytree(tiny_model_dir, served)
    data = (served / WEIGHTS).read_bytes()
    (served / WEIGHTS).write_bytes(data[: len(data) - 4096])
    with HubStub(REPO, served) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        with pytest.raises(DownloadError, match=f"{WEIGHTS} of {REPO} is damaged"):
            manager._download_from_hub(REPO, manager.cache_path(REPO), retries=2)
    _assert_nothing_complete(manager)


def test_a_failed_download_resumes_later_with_only_the_missing_files(tiny_model_dir, tmp_path, monkeypatch):
    with HubStub(REPO, tiny_model_dir) as hub:
        requests = _recording(hub)
        hub.faults[WEIGHTS] = ["500"] * 20
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        manager = ModelManager(cache_dir=tmp_path / "cache")
        with pytest.raises(DownloadError):
            manager._download_from_hub(REPO, manager.cache_path(REPO), retries=1)
        _assert_nothing_complete(manager)
        hub.faults[WEIGHTS] = []  # the network is back
        requests.clear()
        manager.download_model(REPO)
    assert manager.check_local_model(REPO)
    fetched = {name for method, name, _ in requests if method == "GET"}
    assert fetched == {WEIGHTS}, "files finished by the failed try are not fetched again"


def test_cache_model_returns_a_complete_cached_model_without_downloading(tmp_path, tiny_model_dir, monkeypatch):
    """``ModelManager.cache_model`` (the seed's API): a complete cached model is returned as is; nothing is fetched."""
    manager = ModelManager(cache_dir=tmp_path / "models")
    target = manager.cache_path("someone/tiny-llama")
    shutil.copytree(tiny_model_dir, target)
    (target / COMPLETE_MARKER).write_text("")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a download attempt would fail
    assert manager.cache_model("someone/tiny-llama") == str(target)
    assert manager.get_model_info("someone/tiny-llama")["cached"] is True
