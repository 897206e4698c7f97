"""Messages that workers post back to the screens (one dataclass each).

Workers run in threads; ``post_message`` is thread-safe, and these messages carry plain values so
the UI thread never touches the core's objects while a worker is still changing them. Messages
that arrive in bursts (progress, streamed text) implement ``can_replace`` so Textual drops the
stale ones when the UI is busy: the newest snapshot always carries everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

from llmcustoms_tui.state import RunState

if TYPE_CHECKING:  # pragma: no cover - the core's types; the TUI starts without importing the core
    from llmcustoms.core.planner import Plan
    from llmcustoms.data.report import DataReport
    from llmcustoms.training.dataset_check import DatasetReport
    from llmcustoms_tui.backend import ChatSessionLike


@dataclass
class HardwareDetected(Message):
    """The hardware probe finished."""

    info: dict[str, Any]


@dataclass
class LiveRunsFound(Message):
    """Runs still going on from an earlier session (run directories, and a line about each)."""

    run_dirs: list[str]
    descriptions: list[str] = field(default_factory=list)


@dataclass
class DataValidated(Message):
    """A folder was validated; ``report`` is the core's DataReport."""

    path: str
    report: DataReport
    dataset: DatasetReport | None = None  # lengths, duplicates, leakage; None when blocked or failed


@dataclass
class PreviewSample:
    """One example shown on the data screen: where it came from, the pair, and the rendered text."""

    source: str
    source_text: str
    question: str
    answer: str
    kind: str = "offline"
    rendered: str | None = None


@dataclass
class PreviewReady(Message):
    """Examples were built for the preview."""

    path: str
    qa_mode: str
    message: str
    total: int
    samples: list[PreviewSample] = field(default_factory=list)
    template_note: str = ""


@dataclass
class PreviewProgress(Message):
    """A line about the example build (which generator, how far)."""

    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PreviewProgress)


@dataclass
class PlanReady(Message):
    """The core's Plan for the chosen model and preset."""

    model: str
    preset: str
    plan: Plan


@dataclass
class RunSnapshot(Message):
    """The dashboard's whole state after the latest events; a newer one supersedes an older one."""

    key: str
    state: RunState

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunSnapshot) and message.key == self.key


@dataclass
class ChatReady(Message):
    """The chat session finished loading."""

    session: ChatSessionLike
    example_prompts: list[str]
    description: str
    #: The run's knowledge score (``format.knowledge_summary``), None for a run without one.
    knowledge: dict[str, Any] | None = None
    #: The held-out questions (``backend.run_knowledge``): question, reference, span, trained_phrasings.
    held_out: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AnswerChunk(Message):
    """The answer so far for one turn and one side (``tuned`` or ``base``).

    ``complete``: this side's answer is whole; ``done``: the turn's last side is (the screen is free again).
    """

    turn: int
    side: str
    text: str
    done: bool = False
    complete: bool = False

    def can_replace(self, message: Message) -> bool:
        # The newer text contains the older one; a final chunk is never dropped behind a partial one.
        return (isinstance(message, AnswerChunk) and message.turn == self.turn and message.side == self.side
                and not self.done and not self.complete)
