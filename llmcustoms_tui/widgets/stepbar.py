"""The wizard's breadcrumb: ``1 Hardware › 2 Data › [3 Plan] › 4 Train › 5 Chat``."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

#: Screen ids in wizard order, with their titles.
STEPS: tuple[tuple[str, str], ...] = (
    ("hardware", "Hardware"),
    ("data", "Data"),
    ("plan", "Plan"),
    ("train", "Train"),
    ("chat", "Chat"),
)


class StepBar(Widget):
    """Shows where the user is in the five steps. The current step is bracketed, so it reads without colour."""

    DEFAULT_CSS = """
    StepBar { height: 1; width: 1fr; }
    """
    COMPONENT_CLASSES = {"stepbar--current", "stepbar--done", "stepbar--todo"}

    def __init__(self, current: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current = current

    def render(self) -> Text:
        ids = [step for step, _ in STEPS]
        at = ids.index(self.current) if self.current in ids else -1
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" LLMCustoms  ", "bold")
        for index, (_, title) in enumerate(STEPS):
            if index:
                text.append(" › ", self.get_component_rich_style("stepbar--todo"))
            label = f"{index + 1} {title}"
            if index == at:
                text.append(f"[{label}]", self.get_component_rich_style("stepbar--current"))
            elif index < at:
                text.append(f" {label} ", self.get_component_rich_style("stepbar--done"))
            else:
                text.append(f" {label} ", self.get_component_rich_style("stepbar--todo"))
        return text
