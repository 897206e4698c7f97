"""Small formatting helpers shared by the screens (sizes, durations, errors in one line)."""

from __future__ import annotations

import math
import re
from typing import TypeGuard

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from llmcustoms.errors import LLMCustomsError  # light: the core's error classes only


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
    text = str(error).strip()
    if isinstance(error, LLMCustomsError):
        return text or type(error).__name__
    first = text.splitlines()[0] if text else ""
    if len(first) > 200:
        first = first[:197] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# -- the knowledge score (run.json's ``knowledge``, the ``knowledge`` and ``done`` events) --------------
KNOWLEDGE_FIELDS = ("questions", "base", "tuned", "open_book", "message", "general_kept", "general_perplexity_change",
                    "person_questions", "person_tuned")
_SHARES = ("base", "tuned", "open_book", "general_kept", "general_perplexity_change", "person_tuned")
#: How the numbers are measured, shown under them (a score without its method invites trusting it too much).
MEASURED_LINE = "learnt = held-out facts in words never trained on · kept = general answers still right · open book = passage given"


def knowledge_summary(data: object) -> dict | None:
    """The score's numbers and message from a run.json ``knowledge`` dict or an event (no rows); None if none."""
    if not isinstance(data, dict) or not data:
        return None
    summary = {name: data.get(name) for name in KNOWLEDGE_FIELDS}
    for count in ("questions", "person_questions"):
        try:
            summary[count] = int(summary[count] or 0)
        except (TypeError, ValueError):
            summary[count] = 0
    for name in _SHARES:
        value = summary[name]
        summary[name] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    summary["message"] = str(summary["message"] or "")
    return summary


def knowledge_scored(summary: dict | None) -> TypeGuard[dict]:
    """Whether there is a tuned score to show (not 'too few facts', not a run from before the score)."""
    return bool(summary and summary.get("questions") and summary.get("tuned") is not None)


def _known(summary: dict, name: str) -> int | None:
    value = summary.get(name)
    return None if value is None else round(value * summary["questions"])


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def knowledge_parts(summary: dict) -> list[str]:
    """``['Knows 22 of 30 held-out facts (73 %)', 'base model 1 (3 %)', 'open book 25 (83 %)']``."""
    parts = [f"Knows {_known(summary, 'tuned')} of {summary['questions']} held-out facts ({_pct(summary['tuned'])})"]
    if summary.get("base") is not None:
        parts.append(f"base model {_known(summary, 'base')} ({_pct(summary['base'])})")
    if summary.get("open_book") is not None:
        parts.append(f"open book {_known(summary, 'open_book')} ({_pct(summary['open_book'])})")
    if summary.get("person_tuned") is not None and summary.get("person_questions"):
        parts.append(f"your {summary['person_questions']} questions {_pct(summary['person_tuned'])}")
    if summary.get("general_kept") is not None:
        parts.append(f"kept {_pct(summary['general_kept'])} of general knowledge")
    return parts


def knowledge_headline(summary: dict | None) -> str:
    """'Knows 22 of 30 held-out facts; the base model knew 1 (open book: 25)', or the run's message."""
    if not knowledge_scored(summary):
        return (summary or {}).get("message") or "No knowledge score for this run."
    text = f"Knows {_known(summary, 'tuned')} of {summary['questions']} held-out facts"
    if summary.get("base") is not None:
        text += f"; the base model knew {_known(summary, 'base')}"
    if summary.get("open_book") is not None:
        text += f" (open book: {_known(summary, 'open_book')})"
    if summary.get("person_tuned") is not None and summary.get("person_questions"):
        text += f"; your {summary['person_questions']} questions: {_pct(summary['person_tuned'])}"
    if summary.get("general_kept") is not None:
        text += f"; kept {_pct(summary['general_kept'])} of general knowledge"
    return text


def elide_middle(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by cutting its middle: ``velmoria_…_notes.txt``.

    File names of one folder often share a start (``velmoria_history.txt``, ``velmoria_harbour.txt``):
    cut at the end they all read the same, cut in the middle they stay different.
    """
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    tail = (width - 1) // 2
    head = width - 1 - tail
    return text[:head] + "…" + (text[-tail:] if tail else "")


#: A CLI option in a core message, e.g. ``--model smollm2-135m``, and the TUI key that makes the same choice.
_FLAG = re.compile(r"`?--(model|preset)[ =]([\w./:-]+?)`?(?=[\s,;)]|\.(?:\s|$)|$)")
_KEYS = {"model": "m", "preset": "p"}


def tui_hint(text: str, on_plan_screen: bool = False) -> str:
    """A core sentence with its CLI advice (``--model NAME``) said as the key to press in the TUI.

    The core speaks to the command line; in the wizard the same choice is a key on the plan screen.
    ``on_plan_screen``: the user is there already (else the hint says how to get back to it).
    """
    def key(match: re.Match[str]) -> str:
        option, value = match.group(1), match.group(2)
        from_here = "" if on_plan_screen else "go back to the plan (esc) and "
        return f"{from_here}press {_KEYS[option]} to pick {value}"

    return _FLAG.sub(key, text)


def elide_text_middle(text: Text, width: int) -> Text:
    """A styled ``Text`` cut to ``width`` cells in its middle (see ``elide_middle``); unchanged when it fits."""
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text("…" if width == 1 else "")
    tail = (width - 1) // 2
    head = width - 1 - tail
    plain = text.plain
    return Text.assemble(text[:head], "…", text[len(plain) - tail:] if tail else "")


class MiddleElided:
    """A Rich renderable: one line of text cut in the middle to whatever width it is given (a table cell)."""

    def __init__(self, text: str, min_width: int = 12) -> None:
        self.text = text
        self.min_width = min_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(elide_middle(self.text, options.max_width), no_wrap=True, overflow="crop")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(self.min_width, len(self.text)), len(self.text))
