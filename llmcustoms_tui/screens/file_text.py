"""What the model will learn from each file: the extracted text of a file of the checked folder, chosen
from a list (issue 23). Opened from the data screen (v); Escape closes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from llmcustoms_tui import backend

if TYPE_CHECKING:  # pragma: no cover - the core's type; the TUI starts without importing the core
    from llmcustoms.data.report import DataReport


class FileTextScreen(ModalScreen[None]):
    """The files the folder's examples come from, and the text read from the one highlighted."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close", id="close")]

    def __init__(self, report: DataReport, relpath: str | None = None) -> None:
        super().__init__()
        self.report = report
        self.files = [f.relpath for f in report.files if f.status != "skipped"]
        self.start = relpath if relpath in self.files else (self.files[0] if self.files else None)

    def compose(self) -> ComposeResult:
        with Vertical(id="file-text-box"):
            yield Static(Text("What the model will learn from each file (↑↓ choose, Escape closes)", style="bold"),
                         id="file-text-title")
            with Horizontal(id="file-text-main"):
                yield OptionList(*[Option(name, id=name) for name in self.files], id="file-text-list")
                with VerticalScroll(id="file-text-scroll"):
                    yield Static(id="file-text")

    def on_mount(self) -> None:
        files = self.query_one("#file-text-list", OptionList)
        if self.start is not None:
            files.highlighted = self.files.index(self.start)
        files.focus()

    @on(OptionList.OptionHighlighted, "#file-text-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        relpath = str(event.option.id)
        self.query_one("#file-text", Static).update(Text(f"Reading {relpath}…", style="dim"))
        self.load_text(relpath)

    @work(thread=True, exclusive=True, name="file-text", group="file-text", exit_on_error=False)
    def load_text(self, relpath: str) -> None:
        """The file's text, off the UI thread (a document not kept by the check is read again)."""
        try:
            result = backend.file_text(self.report, relpath)
        except Exception as error:  # noqa: BLE001 - the file changed since the check: say so, keep the screen
            text = Text(f"✖ '{relpath}' cannot be shown: {error}")
        else:
            text = Text(result.text)
            if result.cut:
                text.append(f"\n\n… (the first {len(result.text):,} of {result.total_chars:,} characters)", "dim")
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, relpath, text)

    def _show(self, relpath: str, text: Text) -> None:
        files = self.query_one("#file-text-list", OptionList)
        if files.highlighted is None or self.files[files.highlighted] != relpath:
            return  # the user has moved on
        self.query_one("#file-text", Static).update(text)
        self.query_one("#file-text-scroll", VerticalScroll).scroll_home(animate=False)
