"""Step 5: chat with the trained model, answers streamed; optionally the base model's answer beside it.

The run's knowledge score is on the status line, and its held-out questions (facts of the user's text,
asked in a wording the model never trained on) are offered as ready prompts: one of those is answered
by the tuned and the base model side by side, each marked ✔/✖ against the sentence of the text it
came from, which is shown under the answers. Every tuned answer is followed by the passage of the run's
documents that supports it, or "no passage of your documents supports this" (issue 24); ctrl+r opens that
passage amid its file's text (``screens/source.py``).

Loading (base model + adapter) happens in a worker with a visible status. Answers stream from
``ChatSession.stream`` in a worker that posts the text so far; the transcript follows the newest
text only while the user is at the bottom, so scrolling up to read is never yanked away.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, LoadingIndicator, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from llmcustoms_tui import backend
from llmcustoms_tui.format import MEASURED_LINE, knowledge_headline, knowledge_scored
from llmcustoms_tui.messages import AnswerChunk, ChatReady
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.screens.source import SourceScreen, support_text

if TYPE_CHECKING:  # pragma: no cover - the core's type; the TUI starts without importing the core
    from llmcustoms.support.verdict import Support

SIDES = ("tuned", "base")
SIDE_TITLES = {"tuned": "tuned", "base": "base model"}
#: Marks the held-out questions among the ready prompts.
HELD_OUT_MARK = "◆ "
#: From this terminal height up, the line on how the score is measured is shown under it.
ROOMY_HEIGHT = 30


class SupportFound(Message):
    """The passage of the run's documents behind turn ``turn``'s answer on ``side`` (a ``Support``, or None)."""

    def __init__(self, turn: int, support: Support | None, side: str = "tuned") -> None:
        super().__init__()
        self.turn = turn
        self.support = support
        self.side = side


def support_mark(support: Support | None) -> str:
    """The short mark under a pane's answer: whether a passage of the documents supports it."""
    if support is None or not support.supported:
        return "no passage supports it"
    return f"supported: {support.location()}" if support.location() else "supported"


class Turn(Vertical):
    """One prompt and its answer(s)."""

    def __init__(self, number: int, prompt: str, sides: tuple[str, ...], probe: dict[str, Any] | None = None) -> None:
        super().__init__(classes="turn")
        self.number = number
        self.prompt = prompt
        self.sides = sides
        self.probe = probe  # a held-out question: its reference sentence and key span
        self.correct: dict[str, bool] = {}
        self.support: Support | None = None  # the passage behind the tuned answer, once found

    def compose(self) -> ComposeResult:
        prompt = Text.assemble(("You: ", "bold"), self.prompt)
        if self.probe is not None:
            prompt.append(f"  {HELD_OUT_MARK}held out", "dim")
        yield Static(prompt, classes="turn-prompt")
        # A grid, not a Horizontal: panes of height auto side by side in a Horizontal could keep the height
        # of their first text while the answers streamed in (Textual 8), cutting the answers off.
        with Container(classes="turn-answers") as answers:
            answers.styles.grid_size_columns = len(self.sides)
            for side in self.sides:
                yield self.make_answer(side)
        support = Static(classes="turn-support")
        support.display = False
        yield support
        if self.probe is not None and self.probe.get("reference"):
            yield Static(Text.assemble(("From your text: ", "bold"), str(self.probe["reference"])),
                         classes="turn-reference")

    def show_support(self, support: Support | None) -> None:
        """The line under the tuned answer: the passage that supports it, or that none does."""
        self.support = support
        line = self.query_one(".turn-support", Static)
        line.update(support_text(support))
        line.display = True

    def mark_support(self, side: str, support: Support | None) -> None:
        """The pane of ``side`` says under its answer whether a passage supports it (the base model's answer
        gets the same mark as the tuned one, so the user sees what the tuning changed)."""
        pane = self.answer(side)
        if pane is not None:
            pane.border_subtitle = support_mark(support)

    def mark(self, side: str, answer: str) -> None:
        """Title ``side``'s pane ✔ or ✖: does its answer hold the held-out fact's key span?"""
        pane = self.answer(side)
        if pane is None:
            return
        span = str((self.probe or {}).get("span") or "")
        correct = backend.answer_is_correct(answer, span)
        if correct is None:
            return
        self.correct[side] = correct
        pane.border_title = f"{SIDE_TITLES[side]} {'✔ right' if correct else '✖ wrong'}"
        pane.set_class(correct, "-right")
        pane.set_class(not correct, "-wrong")

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
    """A transcript, a prompt box, the run's knowledge score and its held-out questions."""

    STEP = "chat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b", "toggle_base", "Compare with base", id="compare"),
        Binding("ctrl+n", "next_held_out", "Held-out question", id="held-out"),
        Binding("ctrl+o", "focus_suggestions", "Questions", id="suggestions"),
        Binding("ctrl+l", "focus_prompt", "Prompt", id="prompt", show=False),
        Binding("ctrl+r", "open_source", "Source", id="source"),
    ]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.session: backend.ChatSessionLike | None = None
        self.compare = False
        self.busy = False
        self.turns: list[Turn] = []
        self.knowledge: dict[str, Any] | None = None
        self.held_out: list[dict[str, Any]] = []
        self._probes: dict[str, dict[str, Any]] = {}  # question (spaces normalised) → its probe
        self._options: dict[str, str] = {}  # option id → the prompt it stands for
        self._next_held_out = 0
        self.support_note: str | None = None  # why there are no passages, or that the documents changed

    def compose_body(self) -> ComposeResult:
        with Vertical(id="chat-body", classes="body"):
            with Horizontal(id="chat-status-row"):
                yield LoadingIndicator(id="chat-loading")
                yield Static(Text(f"Loading the model and the adapter of {Path(self.run_dir).name}…"),
                             id="chat-status")
            yield Static(id="chat-knowledge")
            yield Static(id="error-panel", classes="error-panel")
            yield VerticalScroll(id="chat-transcript")
            suggestions = OptionList(id="chat-suggestions")
            suggestions.border_title = "try one (Enter puts it in the prompt)"
            yield suggestions
            yield Input(placeholder="Ask something… (Enter sends)", id="chat-input")

    def on_mount(self) -> None:
        self.query_one("#error-panel").display = False
        self.query_one("#chat-suggestions").display = False
        self.query_one("#chat-knowledge").display = False
        prompt = self.query_one("#chat-input", Input)
        self.llm_app.freeze_cursor(prompt)
        prompt.focus()
        self.load_session()

    def on_unmount(self) -> None:
        # Leaving the chat frees the model (the session's job); a failure here must not crash the exit.
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001
                pass

    # -- loading -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, name="load-chat", group="chat", exit_on_error=False)
    def load_session(self) -> None:
        """Load base model + adapter (seconds) off the UI thread."""
        session = self.llm_app.open_chat(self.run_dir)
        prompts = [str(p) for p in session.example_prompts]
        described = session.description if isinstance(session, backend.DescribedSession) else ""
        description = described or backend.describe_run(self.run_dir)
        knowledge, held_out = backend.run_knowledge(self.run_dir)
        self.support_note = backend.support_note(self.run_dir)  # the index is built here, not on the first answer
        self.post_message(ChatReady(session, prompts, description, knowledge, held_out))

    @on(ChatReady)
    def _ready(self, message: ChatReady) -> None:
        self.session = message.session
        self.knowledge = message.knowledge
        self.held_out = list(message.held_out)
        self._probes = {" ".join(p["question"].split()): p for p in self.held_out}
        self.query_one("#chat-loading").display = False
        self._show_status(message.description)
        self._show_knowledge()
        suggestions = self.query_one("#chat-suggestions", OptionList)
        suggestions.clear_options()
        self._options = {}
        options = []
        for index, probe in enumerate(self.held_out):
            self._options[f"held-{index}"] = probe["question"]
            options.append(Option(Text.assemble((HELD_OUT_MARK, "bold"), probe["question"]), id=f"held-{index}"))
        for index, prompt in enumerate(message.example_prompts):
            if " ".join(prompt.split()) not in self._probes:
                self._options[f"prompt-{index}"] = prompt
                options.append(Option(Text(prompt), id=f"prompt-{index}"))
        suggestions.add_options(options)
        if self.held_out:
            suggestions.border_title = f"{HELD_OUT_MARK}{len(self.held_out)} held-out questions · Enter puts one in the prompt"
        suggestions.display = bool(options)
        if self.support_note:
            self.notify(self.support_note, title="Passages of your documents", timeout=8)
        self.refresh_bindings()

    def _show_knowledge(self) -> None:
        line = self.query_one("#chat-knowledge", Static)
        if self.knowledge is None:
            line.display = False
            return
        text = Text()
        if knowledge_scored(self.knowledge):
            text.append(HELD_OUT_MARK + knowledge_headline(self.knowledge), "bold")
            if self.app.size.height >= ROOMY_HEIGHT:  # a 24-row terminal needs its rows for the answers
                text.append("\n" + MEASURED_LINE, "dim")
        else:
            text.append("No knowledge score: ", "bold")
            text.append(knowledge_headline(self.knowledge))
        line.update(text)
        line.set_class(not knowledge_scored(self.knowledge), "-unscored")
        line.display = True

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
        """A ready prompt goes into the prompt box (to send with Enter, or to change first)."""
        option_id = event.option.id or ""
        prompt = self._options.get(option_id, str(event.option.prompt))
        if option_id.startswith("held-"):
            self._next_held_out = int(option_id.split("-", 1)[1]) + 1
        self._put_in_prompt(prompt)

    def _put_in_prompt(self, prompt: str) -> None:
        box = self.query_one("#chat-input", Input)
        box.value = prompt
        box.cursor_position = len(prompt)
        box.focus()

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
        probe = self._probes.get(" ".join(prompt.split()))
        # A held-out question is what the score asked: the base model answers it beside the tuned one.
        both = self.compare or (probe is not None and self.session.has_adapter)
        sides = ("tuned", "base") if both else ("tuned",)
        turn = Turn(len(self.turns) + 1, prompt, sides, probe)
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
        if session is None:  # the screen closed (and freed the model) before the worker started
            return
        for index, side in enumerate(sides):
            text = ""
            for piece in session.stream(prompt, tuned=side == "tuned"):
                if worker.is_cancelled:
                    return
                text += piece
                self.post_message(AnswerChunk(turn, side, text))
            # Before the turn is done, so a test (or a user) that waits for it sees the mark.
            self.post_message(SupportFound(turn, backend.answer_support(self.run_dir, prompt, text), side))
            self.post_message(AnswerChunk(turn, side, text, done=index == len(sides) - 1, complete=True))

    @on(AnswerChunk)
    def _chunk(self, message: AnswerChunk) -> None:
        turn = self.turns[message.turn - 1] if 0 < message.turn <= len(self.turns) else None
        pane = turn.answer(message.side) if turn is not None else None
        if turn is None or pane is None:
            return
        transcript = self.query_one("#chat-transcript", VerticalScroll)
        at_bottom = transcript.scroll_y >= transcript.max_scroll_y - 1
        pane.update(Text(message.text or ("(no answer)" if message.complete or message.done else "…")))
        if message.complete and turn.probe is not None:
            turn.mark(message.side, message.text)
        if message.done:
            self.busy = False
        if at_bottom:
            # After the new text is laid out, follow it — only if the user was following.
            self.call_after_refresh(transcript.scroll_end, animate=False)

    @on(SupportFound)
    def _support(self, message: SupportFound) -> None:
        if not 0 < message.turn <= len(self.turns):
            return
        turn = self.turns[message.turn - 1]
        if len(turn.sides) > 1:  # side by side: each pane carries its own mark
            turn.mark_support(message.side, message.support)
        if message.side == "tuned":
            turn.show_support(message.support)
            self.refresh_bindings()

    # -- keys ----------------------------------------------------------------------------------
    def _source_turn(self) -> Turn | None:
        """The newest turn whose tuned answer has a passage to show (supporting it, or the closest)."""
        for turn in reversed(self.turns):
            if turn.support is not None and turn.support.passage:
                return turn
        return None

    def action_open_source(self) -> None:
        """ctrl+r: the passage behind the newest answer, in its file's text around it."""
        turn = self._source_turn()
        support = turn.support if turn is not None else None
        if support is None:
            self.notify("No answer has a passage of your documents to show yet.", severity="warning")
            return
        self.app.push_screen(SourceScreen(support, backend.support_context(self.run_dir, support)))

    def action_toggle_base(self) -> None:
        """ctrl+b: show the base model's answer beside the tuned one (for the last prompt too)."""
        self.compare = not self.compare
        if self.session is not None:
            self._show_status(self.session.description if isinstance(self.session, backend.DescribedSession) else "")
        if self.compare and self.turns and not self.busy:
            turn = self.turns[-1]
            if turn.answer("base") is None:
                answers = turn.query_one(".turn-answers", Container)
                turn.sides = (*turn.sides, "base")
                answers.styles.grid_size_columns = len(turn.sides)
                answers.mount(Turn.make_answer("base"))
                self.busy = True
                self.stream_answer(turn.number, turn.prompt, ("base",))
        self.notify("Base model beside the tuned one: " + ("on" if self.compare else "off"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_held_out":
            return bool(self.held_out)  # hidden for a run without held-out questions
        if action == "open_source":
            return self._source_turn() is not None  # shown once an answer has a passage
        return super().check_action(action, parameters)

    def action_next_held_out(self) -> None:
        """ctrl+n: the next held-out question into the prompt box (Enter asks the tuned and the base model)."""
        if not self.held_out:
            self.notify("This run has no held-out questions.", severity="warning")
            return
        index = self._next_held_out % len(self.held_out)
        self._next_held_out = index + 1
        suggestions = self.query_one("#chat-suggestions", OptionList)
        try:
            suggestions.highlighted = suggestions.get_option_index(f"held-{index}")
        except Exception:  # noqa: BLE001 - the list is only a view of the same questions
            pass
        self._put_in_prompt(self.held_out[index]["question"])

    def action_focus_suggestions(self) -> None:
        """ctrl+o: the ready prompts (held-out questions first)."""
        suggestions = self.query_one("#chat-suggestions", OptionList)
        if suggestions.display:
            if suggestions.highlighted is None and suggestions.option_count:
                suggestions.highlighted = 0
            suggestions.focus()

    def action_focus_prompt(self) -> None:
        """ctrl+l: the prompt box."""
        self.query_one("#chat-input", Input).focus()
