"""Where LLMCustoms keeps things: one home folder, overridable for tests and power users.

``LLMCUSTOMS_HOME`` replaces ``~/.llmcustoms``; ``CACHE_DIR`` replaces the model cache;
``OUTPUT_DIR`` replaces the runs folder. Every function reads the environment at call time.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The LLMCustoms home folder (``LLMCUSTOMS_HOME`` or ``~/.llmcustoms``)."""
    return Path(os.environ.get("LLMCUSTOMS_HOME") or Path.home() / ".llmcustoms").expanduser()


def models_dir() -> Path:
    """The model cache (``CACHE_DIR`` or ``<home>/models``)."""
    override = os.environ.get("CACHE_DIR")
    return Path(override).expanduser() if override else home_dir() / "models"


def runs_dir() -> Path:
    """Where training runs are written (``OUTPUT_DIR`` or ``<home>/runs``)."""
    override = os.environ.get("OUTPUT_DIR")
    return Path(override).expanduser() if override else home_dir() / "runs"


def logs_dir() -> Path:
    """Where log files go (``<home>/logs``)."""
    return home_dir() / "logs"


def qa_cache_dir() -> Path:
    """Where generated Q&A pairs are cached (``<home>/qa-cache``)."""
    return home_dir() / "qa-cache"
