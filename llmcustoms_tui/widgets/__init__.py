"""Small reusable widgets: memory gauge, loss chart, log tail, run progress, wizard step bar, folder picker."""

from llmcustoms_tui.widgets.gauge import MemoryGauge
from llmcustoms_tui.widgets.log_tail import LogTail
from llmcustoms_tui.widgets.loss_chart import LossChart
from llmcustoms_tui.widgets.paths import PathSuggester, TextFolderTree
from llmcustoms_tui.widgets.progress import RunProgress
from llmcustoms_tui.widgets.stepbar import STEPS, StepBar

__all__ = ["STEPS", "LogTail", "LossChart", "MemoryGauge", "PathSuggester", "RunProgress", "StepBar", "TextFolderTree"]
