"""The last lines of a log, as many as fit: newest at the bottom, never scrolled away."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget


class LogTail(Widget):
    """Shows the newest lines that fit, long ones wrapped (chosen at render time, so a resize keeps them)."""

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

    def tail(self, width: int, height: int) -> list[str]:
        """The newest lines whose wrapped rows fit in ``width`` × ``height`` (at least the newest one)."""
        picked: list[str] = []
        rows = 0
        for line in reversed(self.lines):
            need = max(1, -(-cell_len(line) // max(1, width)))  # rows once wrapped
            if picked and rows + need > height:
                break
            picked.append(line)
            rows += need
        return picked[::-1]

    def render(self) -> Text:
        if not self.lines:
            return Text(self.placeholder)
        return Text("\n".join(self.tail(self.content_size.width or 80, max(1, self.content_size.height))))
