"""Where LLMCustoms keeps things: one home folder, overridable for tests and power users.

``LLMCUSTOMS_HOME`` replaces ``~/.llmcustoms``; ``CACHE_DIR`` replaces the model cache;
``OUTPUT_DIR`` replaces the runs folder (both from the environment or a .env file, as every setting).
Every function reads them at call time.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmcustoms.errors import ConfigError


def home_dir() -> Path:
    """The LLMCustoms home folder (``LLMCUSTOMS_HOME`` or ``~/.llmcustoms``)."""
    return Path(os.environ.get("LLMCUSTOMS_HOME") or Path.home() / ".llmcustoms").expanduser()


def read_dotenv(path: Path) -> dict[str, str]:
    """Every value set in the .env file at ``path`` ({} when there is none); ConfigError when unreadable."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # python-dotenv: imported when a .env file exists

    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"The settings file {path} is not UTF-8 text (a bad byte at offset {error.start}): "
                          "save it as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"The settings file {path} could not be read ({error.strerror or error}).") from None
    return {k: v for k, v in values.items() if v is not None}


def setting(key: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """One setting as text, from the environment, else ``./.env``, else ``<home>/.env`` (None: unset).

    For the places that need a single raw value without checking every other setting (the runs folder,
    the model cache), so a key means the same whether it is exported or written in a .env file.
    """
    value = os.environ.get(key)
    if value not in (None, ""):
        return value
    for path in (Path(cwd) if cwd is not None else Path.cwd(), home_dir()):
        value = read_dotenv(path / ".env").get(key)
        if value not in (None, ""):
            return value
    return None


def setting_origin(key: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """Where ``setting(key)`` found its value, in words: 'the environment' or 'the .env file PATH' (None: unset).

    For sentences that name a bad setting and the place to fix it."""
    if os.environ.get(key) not in (None, ""):
        return "the environment"
    for path in (Path(cwd) if cwd is not None else Path.cwd(), home_dir()):
        if read_dotenv(path / ".env").get(key) not in (None, ""):
            return f"the .env file {(path / '.env').resolve()}"
    return None


def models_dir() -> Path:
    """The model cache (``CACHE_DIR`` from the environment or a .env file, or ``<home>/models``)."""
    override = setting("CACHE_DIR")
    return Path(override).expanduser() if override else home_dir() / "models"


def runs_dir() -> Path:
    """Where training runs are written (``OUTPUT_DIR`` from the environment or a .env file, or ``<home>/runs``)."""
    override = setting("OUTPUT_DIR")
    return Path(override).expanduser() if override else home_dir() / "runs"


def logs_dir() -> Path:
    """Where log files go (``<home>/logs``)."""
    return home_dir() / "logs"


def qa_cache_dir() -> Path:
    """Where generated Q&A pairs are cached (``<home>/qa-cache``)."""
    return home_dir() / "qa-cache"
