"""What every wizard screen shares: the step bar, the footer, Esc to go back, worker errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker

from llmcustoms_tui.widgets.stepbar import StepBar

if TYPE_CHECKING:  # pragma: no cover
    from llmcustoms_tui.app import LLMCustomsApp
    from llmcustoms_tui.state import WizardState


class WizardScreen(Screen[None]):
    """A step of the wizard. Subclasses set ``STEP`` and compose their body with ``compose_body``."""

    STEP: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="back"),
    ]

    @property
    def wizard(self) -> WizardState:
        """The app's shared choices."""
        return self.llm_app.state

    @property
    def llm_app(self) -> LLMCustomsApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP, id="stepbar")
        yield from self.compose_body()
        from textual.widgets import Footer

        yield Footer()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - overridden
        yield from ()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # The first screen has nowhere to go back to: hide the key.
            return len(self.app.screen_stack) > 1
        return True

    def action_back(self) -> None:
        """Esc: the previous step."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    # -- worker errors -------------------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Hand every worker's state to the app's one handler (worker messages do not bubble)."""
        self.llm_app.handle_worker_state(event.worker, event.state)

    def show_worker_error(self, worker_name: str, text: str) -> None:
        """Show a worker's failure on the screen (the app also notifies). Screens refine this."""
        try:
            panel = self.query_one("#error-panel", Static)
        except Exception:  # noqa: BLE001 - a screen without a panel relies on the notification
            return
        panel.update(Text(f"✖ {text}"))
        panel.display = True
