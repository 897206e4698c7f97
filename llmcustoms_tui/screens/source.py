"""The passage behind an answer, in context: the file's text around it, the passage itself highlighted
and the answer's words in it marked (issue 24). Opened from the chat screen (ctrl+r); Escape closes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:  # pragma: no cover - the core's type; the TUI starts without importing the core
    from llmcustoms.support.verdict import Support


def support_text(support: Support | None) -> Text:
    """The line under a tuned answer: ``↳ supported by FILE, line N (paragraph M): “quote”`` with the
    answer's words in bold, or ``↳ no passage of your documents supports this``."""
    text = Text("↳ ", style="dim")
    if support is None or not support.supported:
        text.append("no passage of your documents supports this", style="italic")
        return text
    text.append(f"supported by {support.location()}: ", style="bold")
    quote = Text("“" + support.quote + "”")
    for start, end in support.marks:
        quote.stylize("bold reverse", start + 1, end + 1)
    return text + quote


class SourceScreen(ModalScreen[None]):
    """The supporting passage amid the passages around it in its file."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close", id="close")]

    def __init__(self, support: Support, context: list[tuple[str, bool]]) -> None:
        super().__init__()
        self.support = support
        self.context = context

    def compose(self) -> ComposeResult:
        with Vertical(id="source-box"):
            heading = ("Supported by " if self.support.supported else
                       "The closest passage (it does not support the answer): ") + self.support.location()
            yield Static(Text(heading, style="bold"), id="source-title")
            with VerticalScroll(id="source-text"):
                for text, is_it in self.context:
                    # the passage itself in bold and framed (app.tcss), the text around it plain
                    yield Static(Text(text, style="bold" if is_it else ""),
                                 classes="source-passage" + (" -the-one" if is_it else ""))
            yield Static(Text("Escape closes", style="dim"), id="source-hint")

    def on_mount(self) -> None:
        for widget in self.query(".-the-one").results(Static):
            self.call_after_refresh(widget.scroll_visible, animate=False)
