"""A loss sparkline a few rows high: train loss as bars, eval loss as dots.

The x axis spans the whole run (step 1 … max_steps), so the chart fills from left to right as the
run advances and its width says how far along it is. Bars are drawn with eighth blocks for a
smooth outline; eval points are ``●`` — distinct shapes, so it reads without colour too.
"""

from __future__ import annotations

import bisect

from rich.text import Text
from textual.widget import Widget

from llmcustoms_tui.format import fmt_loss

BLOCKS = " ▁▂▃▄▅▆▇█"
EVAL_MARK = "●"
AXIS_WIDTH = 8  # "  2.345┤"


class LossChart(Widget):
    """Train loss per step (bars) and eval loss (dots) over the run's length."""

    DEFAULT_CSS = """
    LossChart { height: 7; width: 1fr; }
    """
    COMPONENT_CLASSES = {"loss-chart--train", "loss-chart--eval", "loss-chart--axis", "loss-chart--empty"}

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.train_points: list[tuple[int, float]] = []
        self.eval_points: list[tuple[int, float]] = []
        self.max_steps = 0

    def set_data(self, train: list[tuple[int, float]], evals: list[tuple[int, float]], max_steps: int) -> None:
        """Replace the points (already sorted by step) and redraw."""
        self.train_points = list(train)
        self.eval_points = list(evals)
        self.max_steps = max_steps
        self.refresh()

    # -- geometry --------------------------------------------------------------------------------
    def _span(self) -> int:
        last = max([s for s, _ in self.train_points] + [s for s, _ in self.eval_points] + [1])
        return max(self.max_steps, last, 1)

    def column_values(self, columns: int) -> list[float | None]:
        """The train loss drawn in each column: the first logged step at or after the column's start.

        With sparse logging (every k steps) the logged value covers the steps before it, so the
        chart has no gaps; columns past the last logged step stay empty.
        """
        if not self.train_points or columns <= 0:
            return [None] * max(0, columns)
        span = self._span()
        steps = [s for s, _ in self.train_points]
        values: list[float | None] = []
        for column in range(columns):
            # Column c covers the steps in (c·span/columns, (c+1)·span/columns]; steps are 1-based.
            first_step = int(column * span // columns) + 1
            at = bisect.bisect_left(steps, first_step)
            # Only fill a column the run has reached: its first step must be covered by a logged one.
            values.append(self.train_points[at][1] if at < len(steps) else None)
        return values

    def filled_columns(self, columns: int = 60) -> int:
        """How many of ``columns`` hold a bar (tests use it to watch the chart fill)."""
        return sum(v is not None for v in self.column_values(columns))

    # -- drawing ---------------------------------------------------------------------------------
    def render(self) -> Text:
        width = max(AXIS_WIDTH + 4, self.content_size.width or 40)
        height = max(2, self.content_size.height or 7)
        plot_width = width - AXIS_WIDTH
        axis_style = self.get_component_rich_style("loss-chart--axis")
        if not self.train_points and not self.eval_points:
            empty = Text(no_wrap=True)
            for row in range(height):
                caption = "waiting for the first step…" if row == height // 2 else ""
                empty.append(" " * (AXIS_WIDTH - 1) + "│", axis_style)
                empty.append(caption.center(plot_width)[:plot_width], self.get_component_rich_style("loss-chart--empty"))
                if row < height - 1:
                    empty.append("\n")
            return empty

        values = self.column_values(plot_width)
        every = [v for v in values if v is not None] + [v for _, v in self.eval_points]
        low, high = min(every), max(every)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        eighths_total = height * 8

        def level(value: float) -> float:
            return (value - low) / (high - low)

        bar_heights = [None if v is None else 1 + round(level(v) * (eighths_total - 1)) for v in values]
        span = self._span()
        marks: dict[tuple[int, int], bool] = {}
        for step, value in self.eval_points:
            column = min(plot_width - 1, max(0, int((max(step, 1) - 1) * plot_width / span)))
            marks[(round(level(value) * (height - 1)), column)] = True

        train_style = self.get_component_rich_style("loss-chart--train")
        eval_style = self.get_component_rich_style("loss-chart--eval")
        text = Text(no_wrap=True)
        for row in range(height - 1, -1, -1):  # top row first
            if row == height - 1:
                label = fmt_loss(high)
            elif row == 0:
                label = fmt_loss(low)
            else:
                label = ""
            text.append(label.rjust(AXIS_WIDTH - 1)[-(AXIS_WIDTH - 1):] + ("┤" if label else "│"), axis_style)
            line = []
            for column, bar in enumerate(bar_heights):
                if (row, column) in marks:
                    line.append((EVAL_MARK, eval_style))
                    continue
                cell = 0 if bar is None else max(0, min(8, bar - row * 8))
                line.append((BLOCKS[cell], train_style))
            # Merge runs of one style into one segment (smaller SVGs, faster render).
            run_chars: list[str] = []
            run_style = None
            for char, style in line:
                if style is not run_style and run_chars:
                    text.append("".join(run_chars), run_style)
                    run_chars = []
                run_style = style
                run_chars.append(char)
            if run_chars:
                text.append("".join(run_chars), run_style)
            if row:
                text.append("\n")
        return text
