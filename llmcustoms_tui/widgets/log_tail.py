"""The last lines of a log, as many as fit: newest at the bottom, never scrolled away."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class LogTail(Widget):
    """Shows the newest lines that fit its height (chosen at render time, so a resize keeps them)."""

    DEFAULT_CSS = """
    LogTail { height: 1fr; }
    """

    def __init__(self, placeholder: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.lines: list[str] = []
        self.placeholder = placeholder

    def set_lines(self, lines: list[str]) -> None:
        """Replace the lines and redraw."""
        self.lines = list(lines)
        self.refresh()

    def render(self) -> Text:
        height = max(1, self.content_size.height)
        shown = self.lines[-height:] if self.lines else [self.placeholder]
        return Text("\n".join(shown), no_wrap=True, overflow="ellipsis")
