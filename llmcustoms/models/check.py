"""Is a model folder whole? Checked before a run is made for it, with one sentence naming the bad file.

``check_model_folder`` reads a model folder the way training will (config.json parses, a tokenizer is
there, transformers can train its architecture as a chat model) and raises one sentence naming the
file. Whether a model can be had at all (cache, embedded, download) is ``availability.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmcustoms.errors import ModelNotFoundError

#: Files that hold a tokenizer transformers can load (one is enough).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
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
