"""A live line for Q&A generation: chunks done, and how long the server has kept us waiting.

``GenerationProgress`` is a ``progress(done, total)`` callback (``data/generator.py``) that turns the
generator's calls into text: "Generating Q&A pairs: 3 / 10 chunks — waiting for the server… 30 s".
The server generator calls it every second while nothing finishes, so the line keeps moving during
a silent wait instead of looking hung. ``LiveLine`` shows such text on a terminal, rewriting one line,
or as plain lines (fewer of them) when the output is a file or a pipe.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

#: After this many seconds without a finished chunk the line says it is waiting for the server.
WAITING_AFTER_S = 3.0


class GenerationProgress:
    """``progress(done, total)`` → ``show(text)`` whenever the text changes (at most every ``every_s``).

    ``tick_s`` rounds the waiting time shown (1 s on a terminal; 10 s in a log, so it is not flooded).
    """

    def __init__(self, show: Callable[[str], None], every_s: float = 0.0, tick_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.show = show
        self.every_s = every_s
        self.tick_s = max(tick_s, 1e-9)
        self.clock = clock
        self._done: int | None = None
        self._changed = clock()
        self._shown_at = clock()  # nothing within ``every_s`` of the start: a quick build shows no line
        self._last = ""

    def text(self, done: int, total: int) -> str:
        """The line for ``done`` of ``total`` chunks now (updates the waiting time)."""
        now = self.clock()
        if done != self._done:
            self._done, self._changed = done, now
        line = f"Generating Q&A pairs: {done:,} / {total:,} chunks"
        waited = now - self._changed
        if done < total and waited >= WAITING_AFTER_S:
            line += f" — waiting for the server… {int(waited // self.tick_s * self.tick_s)} s"
        return line

    def __call__(self, done: int, total: int) -> None:
        line = self.text(done, total)
        now = self.clock()
        final = done >= total and bool(self._last)  # the last state of a line that was shown
        if line != self._last and (final or now - self._shown_at >= self.every_s):
            self._last, self._shown_at = line, now
            self.show(line)


class LiveLine:
    """One status line on ``stream``: rewritten in place on a terminal, else printed as lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open = False

    def show(self, text: str) -> None:
        """Replace the line with ``text`` (a new line when the stream is not a terminal)."""
        if self.live:
            self.stream.write("\r\x1b[K" + text)
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a message), after ending the live line if one is showing."""
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish the live line, so what is printed next starts on a fresh line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def progress(self) -> GenerationProgress:
        """A ``progress(done, total)`` for this line: every change on a terminal, every 10 s in a file."""
        if self.live:
            return GenerationProgress(self.show, every_s=0.1, tick_s=1.0)
        return GenerationProgress(self.show, every_s=10.0, tick_s=10.0)
