"""Errors a user can cause or meet, each carrying one clear sentence and an exit code.

The CLI and the TUI show ``str(error)`` and nothing else (no traceback unless ``--debug``).
Exit code 2 means bad usage or input; 1 means something failed while running.
"""

from __future__ import annotations


class LLMCustomsError(Exception):
    """Base of every error meant for a person: the message is the whole story."""

    exit_code: int = 1


class InputError(LLMCustomsError):
    """Bad usage or input: a folder, a name, a flag the user gave (exit code 2)."""

    exit_code = 2


class DataError(InputError):
    """The data folder cannot be used for training (missing, empty, unreadable, too little text)."""


class ConfigError(InputError):
    """A setting is invalid: an unknown preset, a malformed value in the environment or .env."""


class ModelNotFoundError(InputError):
    """A model name nobody knows, or a path that holds no model."""


class RunNotFoundError(InputError):
    """A run directory that does not exist or holds no run."""


class DamagedRunError(InputError):
    """A run whose run.json is empty, cut short or not JSON (its adapter folder may still be intact)."""


class DownloadError(LLMCustomsError):
    """A model could not be downloaded (offline, server error, truncated file)."""


class DiskSpaceError(LLMCustomsError):
    """Not enough free disk space for what was asked."""


class OutOfMemoryError(LLMCustomsError):
    """The device ran out of memory and nothing smaller fits."""


class TrainingError(LLMCustomsError):
    """Training stopped for a reason that is not the user's input (NaN loss, a crash)."""


class GeneratorError(LLMCustomsError):
    """The Q&A generation server refused or failed (a refused key, an unreachable server)."""
