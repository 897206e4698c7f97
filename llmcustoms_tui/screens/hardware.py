"""Step 1: what this machine has — GPUs with VRAM gauges, CPU, RAM, disk, the torch/CUDA build, warnings.

Probing needs torch (seconds to import), so the screen appears at once and fills in from a worker
that waits on a child process (see llmcustoms.hardware.probe).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, LoadingIndicator, Static

from llmcustoms_tui.format import fmt_mb
from llmcustoms_tui.messages import HardwareDetected
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.widgets.gauge import MemoryGauge


class HardwareScreen(WizardScreen):
    """The hardware report."""

    STEP = "hardware"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "next", "Next: data", id="next"),
        Binding("r", "redetect", "Detect again", id="redetect"),
    ]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="hw-body", classes="body"):
            with Vertical(id="hw-loading"):
                yield Label("Probing the hardware (loading PyTorch)…", id="hw-loading-label")
                yield LoadingIndicator()
            yield Label("GPUs", classes="section-title")
            yield Vertical(id="hw-gpus")
            yield Label("Machine", classes="section-title")
            yield Static(id="hw-facts")
            yield MemoryGauge(label="RAM", label_width=6, id="hw-ram")
            yield Static(id="hw-warnings")
            yield Static(id="error-panel", classes="error-panel")
            yield Static(Text("Enter: choose the data folder"), id="hw-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#error-panel").display = False
        if self.wizard.hardware is not None:
            self.show_hardware(self.wizard.hardware)
        else:
            # After the first frame: the probe imports torch, which would hold the first screen back.
            self.call_after_refresh(self.detect_hardware)

    # -- the probe -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, name="detect-hardware", group="hardware", exit_on_error=False)
    def detect_hardware(self) -> None:
        """Run the core's HardwareDetector (imports torch) off the UI thread."""
        self.post_message(HardwareDetected(self.llm_app.probe_hardware()))

    @on(HardwareDetected)
    def _hardware_detected(self, message: HardwareDetected) -> None:
        self.wizard.hardware = message.info
        self.show_hardware(message.info)

    def show_worker_error(self, worker_name: str, text: str) -> None:
        self.query_one("#hw-loading").display = False
        super().show_worker_error(worker_name, f"The hardware probe failed: {text}  (r: try again)")

    # -- drawing -------------------------------------------------------------------------------
    def show_hardware(self, info: dict[str, Any]) -> None:
        """Fill the screen from the core's hardware dict."""
        self.query_one("#hw-loading").display = False
        self.query_one("#error-panel").display = False
        gpus = self.query_one("#hw-gpus", Vertical)
        gpus.remove_children()
        found = info.get("gpus") or []
        if not found:
            gpus.mount(Static(Text("No GPU found: training runs on the CPU — slower, but it works.",
                                   style="italic"), classes="gpu-none"))
        for gpu in found:
            total = gpu.get("total_mb")
            used = gpu.get("used_mb")
            if used is None and total is not None and gpu.get("free_mb") is not None:
                used = total - gpu["free_mb"]
            gpus.mount(Label(Text(f"GPU {gpu.get('index', '?')}  {gpu.get('name', 'unknown GPU')}", style="bold"),
                             classes="gpu-name"))
            gpus.mount(MemoryGauge(used, total, label="VRAM", label_width=6, classes="gpu-gauge"))

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("CPU", f"{info.get('cpu_count', '?')} cores")
        ram_total = info.get("ram_total_mb")
        ram_free = info.get("ram_available_mb")
        table.add_row("RAM", f"{fmt_mb(ram_total)} in all, {fmt_mb(ram_free)} available")
        table.add_row("Disk", f"{fmt_mb(info.get('disk_free_mb'))} free for the model cache")
        torch_version = info.get("torch_version") or "not installed"
        if info.get("cuda_available"):
            cuda = f"CUDA {info.get('cuda_version') or '?'}"
        elif info.get("cuda_version"):
            cuda = f"built for CUDA {info['cuda_version']}, but no usable GPU"
        else:
            cuda = "CPU-only build"
        table.add_row("PyTorch", f"{torch_version} ({cuda})")
        table.add_row("NVML", "available" if info.get("nvml_available") else "not available")
        device = info.get("device") or ("cuda" if info.get("cuda_available") else "cpu")
        table.add_row("Trains on", "the GPU (cuda)" if device == "cuda" else "the CPU")
        self.query_one("#hw-facts", Static).update(table)

        ram = self.query_one("#hw-ram", MemoryGauge)
        if ram_total:
            ram.set_memory(ram_total - (ram_free if ram_free is not None else ram_total), ram_total,
                           available_mb=ram_free)
        warnings = [str(w) for w in info.get("warnings") or []]
        box = self.query_one("#hw-warnings", Static)
        box.display = bool(warnings)
        if warnings:
            text = Text()
            for index, warning in enumerate(warnings):
                text.append(("\n" if index else "") + "⚠ " + warning)
            box.update(text)

    # -- keys ----------------------------------------------------------------------------------
    def action_next(self) -> None:
        """Enter: on to the data folder."""
        self.llm_app.goto("data")

    def action_redetect(self) -> None:
        """r: probe again (after plugging in a card or fixing drivers)."""
        self.wizard.hardware = None
        self.query_one("#hw-loading").display = True
        self.query_one("#error-panel").display = False
        self.detect_hardware()
