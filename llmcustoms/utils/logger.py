"""Logging to the console and to ``~/.llmcustoms/logs/``, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from typing import Any

from llmcustoms.paths import logs_dir

_SECRET_PATTERNS = [re.compile(r"gsk_[A-Za-z0-9]{8,}"), re.compile(r"sk-[A-Za-z0-9_\-]{16,}")]


def scrub(text: str) -> str:
    """``text`` with anything that looks like an API key (and the configured key) replaced."""
    key = os.environ.get("GROQ_API_KEY")
    if key and len(key) >= 6:
        text = text.replace(key, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("***", text)
    return text


class SecretFilter(logging.Filter):
    """Removes API keys from log records before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


class Logger:
    """The library's logger: console + file, with one-line training progress and hardware records."""

    def __init__(self, name: str = "llmcustoms") -> None:
        self.name = name
        self.logger = logging.getLogger(name)

    def setup_logger(self, log_level: str = "INFO", console: bool = True) -> logging.Logger:
        """Configure the 'llmcustoms' logger once: a console handler (optional) and a daily log file."""
        logger = self.logger
        logger.setLevel(log_level.upper())
        logger.propagate = False
        if not any(isinstance(f, SecretFilter) for f in logger.filters):
            logger.addFilter(SecretFilter())
        if not any(getattr(h, "_llmcustoms", False) for h in logger.handlers):
            try:
                logs_dir().mkdir(parents=True, exist_ok=True)
                path = logs_dir() / f"llmcustoms-{time.strftime('%Y%m%d')}.log"
                file_handler = logging.FileHandler(path, encoding="utf-8")
                file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
                file_handler._llmcustoms = True  # type: ignore[attr-defined]
                logger.addHandler(file_handler)
            except OSError:
                pass  # a read-only home must not stop the tool; the console still works
            if console:
                stream = logging.StreamHandler(sys.stderr)
                stream.setFormatter(logging.Formatter("%(message)s"))
                stream.setLevel(log_level.upper())
                stream._llmcustoms = True  # type: ignore[attr-defined]
                logger.addHandler(stream)
        return logger

    def log_training_progress(self, metrics: dict[str, Any]) -> None:
        """One line for a training step or evaluation: step, loss, lr, throughput."""
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if k != "t"]
        self.logger.info("progress " + " ".join(parts))

    def log_hardware_info(self, hardware_info: dict[str, Any]) -> None:
        """One record of what the hardware detector found."""
        self.logger.info("hardware %s", hardware_info)


def get_logger(name: str = "llmcustoms") -> logging.Logger:
    """A child of the 'llmcustoms' logger."""
    return logging.getLogger(name if name.startswith("llmcustoms") else f"llmcustoms.{name}")


def quiet_libraries() -> None:
    """Silence the libraries' own progress bars and deprecation chatter; our events tell the story.

    Environment variables are used so nothing heavy is imported here.
    """

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Set (so the Rust tokenizer never warns about forks) and on: nothing here forks a process that
    # tokenizes (DataLoader workers are 0; detached runs and torchrun start fresh interpreters), and
    # batch tokenizing on every core takes the 10 MB data step from ~5.0 s to ~4.0 s on 2 cores.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
