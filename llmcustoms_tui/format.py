"""Small formatting helpers shared by the screens (sizes, durations, errors in one line)."""

from __future__ import annotations

import math


def fmt_mb(mb: float | int | None) -> str:
    """Megabytes in the unit a person reads: ``512 MB``, ``7.8 GB``; ``?`` when unknown."""
    if mb is None or (isinstance(mb, float) and math.isnan(mb)):
        return "?"
    if abs(mb) >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb:.0f} MB"


def fmt_duration(seconds: float | int | None) -> str:
    """``1:02:03`` / ``2:05``; ``—`` when unknown."""
    if seconds is None or seconds < 0 or (isinstance(seconds, float) and not math.isfinite(seconds)):
        return "—"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def fmt_minutes(minutes: float | None) -> str:
    """An estimated duration given in minutes: ``about 12 min`` / ``about 2.5 h`` / ``under a minute``."""
    if minutes is None or not math.isfinite(minutes):
        return "unknown"
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"about {minutes:.0f} min"
    return f"about {minutes / 60:.1f} h"


def fmt_count(number: float | int | None) -> str:
    """``12,345``; ``?`` when unknown."""
    if number is None:
        return "?"
    return f"{int(number):,}"


def fmt_bytes(size: int | None) -> str:
    """A file size: ``812 B``, ``4.1 KB``, ``2.3 MB``."""
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024**2:.1f} MB"


def fmt_loss(value: float | None) -> str:
    """A loss with three decimals, or ``—``."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.3f}"


def describe_error(error: BaseException | None) -> str:
    """What a person should read about ``error``.

    LLMCustoms' own errors carry a sentence meant for people: shown as-is. Anything else is a
    bug or an environment problem: one line (type and first line of the message), no traceback.
    """
    if error is None:
        return "Something went wrong (no details)."
    try:
        from llmcustoms.errors import LLMCustomsError
    except ImportError:  # pragma: no cover - the core is always installed with the TUI
        LLMCustomsError = ()  # type: ignore[assignment,misc]
    text = str(error).strip()
    if LLMCustomsError and isinstance(error, LLMCustomsError):
        return text or type(error).__name__
    first = text.splitlines()[0] if text else ""
    if len(first) > 200:
        first = first[:197] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
