"""Step 5: chat with the trained model, answers streamed; optionally the base model's answer beside it.

Loading (base model + adapter) happens in a worker with a visible status. Answers stream from
``ChatSession.stream`` in a worker that posts the text so far; the transcript follows the newest
text only while the user is at the bottom, so scrolling up to read is never yanked away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from llmcustoms_tui import backend
from llmcustoms_tui.messages import AnswerChunk, ChatReady
from llmcustoms_tui.screens.base import WizardScreen

SIDES = ("tuned", "base")
SIDE_TITLES = {"tuned": "tuned", "base": "base model"}


class Turn(Vertical):
    """One prompt and its answer(s)."""

    def __init__(self, number: int, prompt: str, sides: tuple[str, ...]) -> None:
        super().__init__(classes="turn")
        self.number = number
        self.prompt = prompt
        self.sides = sides

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("You: ", "bold"), self.prompt), classes="turn-prompt")
        with Horizontal(classes="turn-answers"):
            for side in self.sides:
                yield self.make_answer(side)

    @staticmethod
    def make_answer(side: str) -> Static:
        """An empty answer pane for ``side``."""
        answer = Static(Text("…"), classes=f"answer answer-{side}", name=side)
        answer.border_title = SIDE_TITLES[side]
        return answer

    def answer(self, side: str) -> Static | None:
        """The pane of ``side``, if this turn has one."""
        for pane in self.query(".answer").results(Static):
            if pane.name == side:
                return pane
        return None


class ChatScreen(WizardScreen):
    """A transcript, a prompt box and the run's example prompts."""

    STEP = "chat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b", "toggle_base", "Compare with base", id="compare"),
        Binding("ctrl+o", "focus_suggestions", "Suggestions", id="suggestions"),
        Binding("ctrl+l", "focus_prompt", "Prompt", id="prompt", show=False),
    ]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.session: Any = None
        self.compare = False
        self.busy = False
        self.turns: list[Turn] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="chat-body", classes="body"):
            with Horizontal(id="chat-status-row"):
                yield LoadingIndicator(id="chat-loading")
                yield Static(Text(f"Loading the model and the adapter of {Path(self.run_dir).name}…"),
                             id="chat-status")
            yield Static(id="error-panel", classes="error-panel")
            yield VerticalScroll(id="chat-transcript")
            suggestions = OptionList(id="chat-suggestions")
            suggestions.border_title = "try one (Enter sends it)"
            yield suggestions
            yield Input(placeholder="Ask something… (Enter sends)", id="chat-input")

    def on_mount(self) -> None:
        self.query_one("#error-panel").display = False
        self.query_one("#chat-suggestions").display = False
        prompt = self.query_one("#chat-input", Input)
        self.llm_app.freeze_cursor(prompt)
        prompt.focus()
        self.load_session()

    def on_unmount(self) -> None:
        # Leaving the chat frees the model (the session's job); a failure here must not crash the exit.
        session, self.session = self.session, None
        close = getattr(session, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

    # -- loading -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, name="load-chat", group="chat", exit_on_error=False)
    def load_session(self) -> None:
        """Load base model + adapter (seconds) off the UI thread."""
        session = self.llm_app.open_chat(self.run_dir)
        prompts = [str(p) for p in (getattr(session, "example_prompts", None) or [])]
        description = str(getattr(session, "description", "") or backend.describe_run(self.run_dir))
        self.post_message(ChatReady(session, prompts, description))

    @on(ChatReady)
    def _ready(self, message: ChatReady) -> None:
        self.session = message.session
        self.query_one("#chat-loading").display = False
        self._show_status(message.description)
        suggestions = self.query_one("#chat-suggestions", OptionList)
        suggestions.clear_options()
        suggestions.add_options([Option(Text(p), id=f"prompt-{i}") for i, p in enumerate(message.example_prompts)])
        suggestions.display = bool(message.example_prompts)

    def _show_status(self, description: str = "") -> None:
        text = Text()
        text.append("Ready", "bold")
        text.append(f": {description or Path(self.run_dir).name}")
        text.append("  ·  base model beside: " + ("on" if self.compare else "off") + " (ctrl+b)")
        self.query_one("#chat-status", Static).update(text)

    def show_worker_error(self, worker_name: str, text: str) -> None:
        if worker_name == "load-chat":
            self.query_one("#chat-loading").display = False
            self.query_one("#chat-status", Static).update(Text("The model could not be loaded.", style="bold"))
        if worker_name == "answer":
            self.busy = False
        super().show_worker_error(worker_name, text)

    # -- asking --------------------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.ask(event.value)

    @on(OptionList.OptionSelected, "#chat-suggestions")
    def _suggestion(self, event: OptionList.OptionSelected) -> None:
        self.ask(str(event.option.prompt))
        self.query_one("#chat-input", Input).focus()

    def ask(self, prompt: str) -> None:
        """Send ``prompt``: a new turn in the transcript, answered by a streaming worker."""
        prompt = prompt.strip()
        if not prompt:
            return
        if self.session is None:
            self.notify("The model is still loading.", severity="warning")
            return
        if self.busy:
            self.notify("Wait for the current answer to finish.", severity="warning")
            return
        self.query_one("#chat-input", Input).value = ""
        sides = ("tuned", "base") if self.compare else ("tuned",)
        turn = Turn(len(self.turns) + 1, prompt, sides)
        self.turns.append(turn)
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        transcript.mount(turn)
        transcript.scroll_end(animate=False)
        self.busy = True
        self.stream_answer(turn.number, prompt, sides)

    @work(thread=True, exclusive=True, name="answer", group="answer", exit_on_error=False)
    def stream_answer(self, turn: int, prompt: str, sides: tuple[str, ...]) -> None:
        """Stream each side's answer; every piece posts the whole text so far (stale ones coalesce)."""
        worker = get_current_worker()
        session = self.session
        for index, side in enumerate(sides):
            text = ""
            for piece in session.stream(prompt, tuned=side == "tuned"):
                if worker.is_cancelled:
                    return
                text += piece
                self.post_message(AnswerChunk(turn, side, text))
            self.post_message(AnswerChunk(turn, side, text, done=index == len(sides) - 1))

    @on(AnswerChunk)
    def _chunk(self, message: AnswerChunk) -> None:
        turn = self.turns[message.turn - 1] if 0 < message.turn <= len(self.turns) else None
        pane = turn.answer(message.side) if turn is not None else None
        if pane is None:
            return
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        at_bottom = transcript.scroll_y >= transcript.max_scroll_y - 1
        pane.update(Text(message.text or ("(no answer)" if message.done else "…")))
        if message.done:
            self.busy = False
        if at_bottom:
            # After the new text is laid out, follow it — only if the user was following.
            self.call_after_refresh(transcript.scroll_end, animate=False)

    # -- keys ----------------------------------------------------------------------------------
    def action_toggle_base(self) -> None:
        """ctrl+b: show the base model's answer beside the tuned one (for the last prompt too)."""
        self.compare = not self.compare
        if self.session is not None:
            self._show_status(getattr(self.session, "description", "") or "")
        if self.compare and self.turns and not self.busy:
            turn = self.turns[-1]
            if turn.answer("base") is None:
                turn.query_one(".turn-answers", Horizontal).mount(Turn.make_answer("base"))
                turn.sides = (*turn.sides, "base")
                self.busy = True
                self.stream_answer(turn.number, turn.prompt, ("base",))
        self.notify("Base model beside the tuned one: " + ("on" if self.compare else "off"))

    def action_focus_suggestions(self) -> None:
        """ctrl+o: the example prompts."""
        suggestions = self.query_one("#chat-suggestions", OptionList)
        if suggestions.display:
            if suggestions.highlighted is None and suggestions.option_count:
                suggestions.highlighted = 0
            suggestions.focus()

    def action_focus_prompt(self) -> None:
        """ctrl+l: the prompt box."""
        self.query_one("#chat-input", Input).focus()
