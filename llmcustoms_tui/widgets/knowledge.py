"""The knowledge score in one line: ``Knows 22 of 30 held-out facts (73 %) · base model 1 (3 %) · open book 25 (83 %)
· kept 97 % of general knowledge``, and under it how those numbers are measured.

Chosen at render time from the width it has (so a resize re-flows it): the whole line, a shorter one,
or the tuned score on one line and the two others below. With no score (too few facts) the run's
sentence says why.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from llmcustoms_tui.format import MEASURED_LINE, knowledge_parts, knowledge_scored

SEPARATOR = " · "


class KnowledgeLine(Widget):
    """The run's knowledge score (``set_knowledge`` with the summary from ``format.knowledge_summary``)."""

    DEFAULT_CSS = """
    KnowledgeLine { height: auto; }
    """

    COMPONENT_CLASSES = {"knowledge--score", "knowledge--other", "knowledge--none"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.summary: dict | None = None

    def set_knowledge(self, summary: dict | None) -> None:
        """Show ``summary`` (None: nothing)."""
        self.summary = summary
        self.refresh(layout=True)

    @property
    def plain(self) -> str:
        """The widest form, as plain text (what tests and notifications read)."""
        return self.variants()[0].plain if self.summary else ""

    def variants(self) -> list[Text]:
        """The forms from the widest to the narrowest."""
        summary = self.summary
        if not summary:
            return [Text("")]
        if not knowledge_scored(summary):
            message = summary.get("message") or "No knowledge score for this run."
            return [Text.assemble(("Knowledge: ", "bold"), (message, self._style("knowledge--none")))]
        parts = knowledge_parts(summary)
        score, others = parts[0], parts[1:]
        score_style, other_style = self._style("knowledge--score"), self._style("knowledge--other")
        short = [part.replace("base model ", "base ") for part in others]
        forms = []
        for rest, joint in ((others, SEPARATOR), (short, SEPARATOR), (others, "\n")):
            text = Text(score, score_style)
            if rest:
                text.append(joint)
                text.append(SEPARATOR.join(rest), other_style)
            text.append("\n" + MEASURED_LINE, self._style("knowledge--none"))  # how it was measured, always
            forms.append(text)
        return forms

    def _style(self, name: str):
        try:
            return self.get_component_rich_style(name, partial=True)
        except Exception:  # noqa: BLE001 - not mounted yet (a test asking for the text)
            return ""

    def form_for(self, width: int) -> Text:
        """The widest form whose lines fit in ``width`` cells (the narrowest when none does: it wraps)."""
        forms = self.variants()
        for form in forms:
            score_lines = form.plain.split("\n")[:-1]  # the method's line below may wrap
            if max((cell_len(line) for line in score_lines), default=0) <= width:
                return form
        return forms[-1]

    def get_content_height(self, container, viewport, width: int) -> int:
        if not self.summary:
            return 0
        return len(self.form_for(width).wrap(self.app.console, max(1, width)))

    def render(self) -> Text:
        return self.form_for(self.content_size.width or 10_000)
