"""A one-line memory gauge: ``VRAM ██████░░░░░░ 3.1 / 8.0 GB used · 4.9 GB free``.

Two modes: ``usage`` (used out of total: VRAM, RAM) and ``need`` (a plan's estimate against the
free memory). The bar uses different characters for the two parts so it reads without colour.
RAM is the system's: ``RAM ███░░ 11.7 / 24.0 GB used · 12.3 GB available · this run 2.4 GB`` — what is
available is the system's own figure (not total minus used), and the run's share is said apart.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from llmcustoms_tui.format import fmt_mb

#: From this share of the total, the used part is drawn in the warning colour.
HIGH_USE = 0.9


class MemoryGauge(Widget):
    """A labelled bar of used (or needed) memory against a total."""

    DEFAULT_CSS = """
    MemoryGauge { height: 1; width: 1fr; }
    """
    COMPONENT_CLASSES = {"gauge--label", "gauge--used", "gauge--high", "gauge--over", "gauge--free",
                         "gauge--detail"}

    value_mb: reactive[float | None] = reactive(None)
    total_mb: reactive[float | None] = reactive(None)

    def __init__(self, value_mb: float | None = None, total_mb: float | None = None, *, label: str = "",
                 mode: str = "usage", label_width: int = 0, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.label = label
        self.mode = mode
        self.label_width = label_width
        self.set_reactive(MemoryGauge.value_mb, value_mb)
        self.set_reactive(MemoryGauge.total_mb, total_mb)
        #: What the system says is available (None: total minus used is what is free).
        self.available_mb: float | None = None
        #: The training process's own share, said after the bar (None: not shown).
        self.process_mb: float | None = None

    def set_memory(self, value_mb: float | None, total_mb: float | None, *, available_mb: float | None = None,
                   process_mb: float | None = None) -> None:
        """Update the numbers at once (one refresh); ``available_mb`` and ``process_mb`` as described above."""
        self.available_mb = available_mb
        self.process_mb = process_mb
        self.value_mb = value_mb
        self.total_mb = total_mb
        self.refresh()

    @property
    def fraction(self) -> float | None:
        """value / total (the run's share when only that is known), or None when unknown."""
        value = self.value_mb if self.value_mb is not None else self.process_mb
        if value is None or not self.total_mb:
            return None
        return max(0.0, value / self.total_mb)

    def detail(self) -> str:
        """The words after the bar."""
        value, total = self.value_mb, self.total_mb
        share = f"this run {fmt_mb(self.process_mb)}" if self.process_mb is not None else ""
        if value is None and share and total is not None:
            return f"{share} of {fmt_mb(total)}"  # a run from before the system's use was recorded
        if value is None or total is None:
            return "unknown"
        if self.mode == "need":
            if value > total:
                return f"needs {fmt_mb(value)}, only {fmt_mb(total)} free"
            return f"needs {fmt_mb(value)} of {fmt_mb(total)} free"
        if self.available_mb is not None:
            text = f"{fmt_mb(value)} / {fmt_mb(total)} used · {fmt_mb(self.available_mb)} available"
        else:
            text = f"{fmt_mb(value)} / {fmt_mb(total)} used · {fmt_mb(max(0.0, total - value))} free"
        return f"{text} · {share}" if share else text

    def render(self) -> Text:
        label = self.label.ljust(self.label_width) if self.label else ""
        detail = " " + self.detail()
        label_style = self.get_component_rich_style("gauge--label")
        width = self.content_size.width or 40
        bar_width = max(4, min(40, width - len(label) - len(detail) - (1 if label else 0)))
        fraction = self.fraction
        text = Text(no_wrap=True, overflow="ellipsis")
        if label:
            text.append(label + " ", label_style)
        if fraction is None:
            text.append("·" * bar_width, self.get_component_rich_style("gauge--free"))
        else:
            filled = min(bar_width, round(min(1.0, fraction) * bar_width))
            if fraction > 0 and filled == 0:
                filled = 1  # something used shows as something
            part = "gauge--over" if fraction > 1 else "gauge--high" if fraction >= HIGH_USE else "gauge--used"
            text.append("█" * filled, self.get_component_rich_style(part))
            text.append("░" * (bar_width - filled), self.get_component_rich_style("gauge--free"))
        text.append(detail, self.get_component_rich_style("gauge--detail"))
        return text
