"""Where LLMCustoms keeps things: one home folder, overridable for tests and power users.

``LLMCUSTOMS_HOME`` replaces ``~/.llmcustoms``; ``CACHE_DIR`` replaces the model cache;
``OUTPUT_DIR`` replaces the runs folder (both from the environment or a .env file, as every setting).
Every function reads them at call time.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The LLMCustoms home folder (``LLMCUSTOMS_HOME`` or ``~/.llmcustoms``)."""
    return Path(os.environ.get("LLMCUSTOMS_HOME") or Path.home() / ".llmcustoms").expanduser()


def _setting(key: str) -> str | None:
    # From the environment or a .env file alike (utils.config.setting); imported here, not at the top,
    # because the config module itself needs home_dir().
    from llmcustoms.utils.config import setting

    return setting(key)


def models_dir() -> Path:
    """The model cache (``CACHE_DIR`` from the environment or a .env file, or ``<home>/models``)."""
    override = _setting("CACHE_DIR")
    return Path(override).expanduser() if override else home_dir() / "models"


def runs_dir() -> Path:
    """Where training runs are written (``OUTPUT_DIR`` from the environment or a .env file, or ``<home>/runs``)."""
    override = _setting("OUTPUT_DIR")
    return Path(override).expanduser() if override else home_dir() / "runs"


def logs_dir() -> Path:
    """Where log files go (``<home>/logs``)."""
    return home_dir() / "logs"


def qa_cache_dir() -> Path:
    """Where generated Q&A pairs are cached (``<home>/qa-cache``)."""
    return home_dir() / "qa-cache"
