"""Step 2: the data folder — pick it, validate it, see what the model will learn from.

Validation is the core's (``validate_folder``): errors block the way on, warnings do not. A preview
then builds the examples (``build_examples``, with the chosen Q&A mode; sending text to a server is
confirmed first) and renders a few through the model's own chat template (``render_example``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich import box
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import DirectoryTree, Input, Label, Select, Static
from textual.worker import get_current_worker

from llmcustoms_tui import backend
from llmcustoms_tui.format import MiddleElided, fmt_bytes, fmt_count
from llmcustoms_tui.messages import DataValidated, PreviewProgress, PreviewReady, PreviewSample
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.widgets.paths import FolderValidator, PathSuggester, TextFolderTree

if TYPE_CHECKING:  # pragma: no cover - the core's types; imported by the workers, not at start
    from llmcustoms.data.report import DataReport
    from llmcustoms.data.types import FileReport
    from llmcustoms.training.dataset_check import DatasetReport

QA_CHOICES = [
    ("auto: Groq if GROQ_API_KEY is set", "auto"),
    ("offline: no server", "offline"),
    ("groq: ask Groq (confirms first)", "groq"),
]


def report_summary(report: DataReport) -> list[str]:
    """Totals of a DataReport in a few lines (its errors and warnings are shown with the verdict)."""
    return [
        f"{report.usable_files} usable file(s) of {len(report.files)}, {fmt_bytes(report.total_bytes)}"
        + f", {fmt_count(report.total_chars)} characters",
        f"{_examples_text(report)}, about {fmt_count(report.estimated_tokens)} tokens",
    ]


def _examples_text(report: DataReport) -> str:
    """The core's one example count: '700 examples offline', or 'about 76,000 examples offline (an
    estimate)' for a large folder; counted by the validation worker, never here on the UI thread."""
    count = report.known_example_count
    if count is None:
        return f"{fmt_count(report.estimated_examples)} examples offline"
    if count.exact:
        return f"{count.examples:,} examples offline"
    return f"about {count.examples:,} examples offline (an estimate)"


def files_table(report: DataReport) -> Table:
    """Every file the check looked at, with its problems (a Rich table: it wraps to the width)."""
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    # Names are cut in the middle (MiddleElided), so names with a common start stay different.
    table.add_column("File", ratio=3, no_wrap=True, min_width=14)
    table.add_column("Read as", no_wrap=True)
    table.add_column("Words", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Dropped, problems", ratio=2)
    for file in report.files:
        status = file.status
        mark = {"ok": "✔ ", "warning": "⚠ ", "skipped": "✖ "}.get(status, "")
        # What was read: the format, its pages or sections, and the words extracted (issue 23).
        dropped = [f"dropped {', '.join(file.dropped)}"] if file.dropped else []
        problems = "; ".join(dropped + file.problems) or "—"
        words = "—" if status == "skipped" else fmt_count(file.words)
        table.add_row(MiddleElided(file.relpath), _what_was_read(file), words, mark + status, Text(problems))
    return table


_FORMAT_LABELS = {"txt": "text", "markdown": "Markdown", "pdf": "PDF", "docx": "Word", "html": "web page",
                  "epub": "EPUB", "jsonl": "chat"}


def _what_was_read(file: FileReport) -> str:
    """The format and its pages or sections: 'PDF, 12 pages', 'Markdown, 1 section', 'text'."""
    name = _FORMAT_LABELS.get(file.format, file.format)
    units, unit = file.units, file.unit
    if not units or not unit or file.status == "skipped":
        return name
    return f"{name}, {units:,} {unit[:-1] if units == 1 and unit.endswith('s') else unit}"


class DataScreen(WizardScreen):
    """Choose and check the folder of documents."""

    STEP = "data"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next", "Next: plan", id="next"),
        Binding("ctrl+r", "revalidate", "Check again", id="revalidate"),
        Binding("v", "view_text", "Text", id="view-text"),
        Binding("ctrl+t", "focus_tree", "Folders", id="focus-tree"),
        Binding("ctrl+l", "focus_path", "Path", id="focus-path"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._validated_path: str | None = None
        self._from_tree: str | None = None  # the path box's value as the tree set it (not typed)
        self._follow_timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        start = Path(self.wizard.data_path).expanduser() if self.wizard.data_path else None
        # Start inside the chosen folder (its documents show at once; Backspace goes up), else here.
        # Absolute, so the root has a name to show (Path(".").name is empty).
        root = (start if start is not None and start.is_dir() else Path(".")).resolve()
        with Horizontal(id="data-main"):
            tree = TextFolderTree(root, id="data-tree")
            tree.border_title = "Folders · files"  # short: the panel is 22 columns at 80×24
            yield tree
            with VerticalScroll(id="data-body", classes="body"):
                yield Label("Folder of .txt, .md, .pdf, .docx, .html, .epub and chat .jsonl files (Enter: check, "
                            "→: complete)", classes="section-title", id="data-path-title")
                yield Input(value=self.wizard.data_path or "", placeholder="~/notes  or  examples/data",
                            validators=[FolderValidator()], validate_on=["changed", "submitted"],
                            suggester=PathSuggester(), id="data-path")
                with Horizontal(id="data-qa-row"):
                    yield Label("Q&A pairs", id="data-qa-label")
                    yield Select(QA_CHOICES, value=self.wizard.qa, allow_blank=False, id="data-qa")
                yield Static(id="data-verdict")
                yield Static(id="error-panel", classes="error-panel")
                yield Static(id="data-summary")
                yield Static(id="data-files")
                yield Static(id="data-dataset")  # lengths, duplicates, leakage of the examples (issue 23)
                yield Label("Preview", classes="section-title", id="data-preview-title")
                yield Static(id="data-preview-status", classes="muted")
                yield Vertical(id="data-preview")

    def on_mount(self) -> None:
        self.query_one("#data-files").display = False
        self.query_one("#error-panel").display = False
        self.query_one("#data-preview-title").display = False
        self.llm_app.freeze_cursor(self.query_one("#data-path", Input))
        if self.wizard.data_path:
            self.start_validation(self.wizard.data_path)
        else:
            self.query_one("#data-verdict", Static).update(
                Text("Pick a folder in the tree, or type its path and press Enter."))
            self.query_one("#data-path", Input).focus()

    # -- choosing ------------------------------------------------------------------------------
    @on(Input.Submitted, "#data-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            self.show_blocked("type or pick a folder of documents.")
            return
        # The core says what is wrong, even for a missing folder: one voice for every problem.
        self.start_validation(value)

    @on(Input.Changed, "#data-path")
    def _path_changed(self, event: Input.Changed) -> None:
        """A typed path moves the tree to it, once typing pauses (each keystroke would make it jump)."""
        if event.value == self._from_tree:
            return
        if self._follow_timer is not None:
            self._follow_timer.stop()
        self._follow_timer = self.set_timer(0.4, partial(self.follow_path, event.value))

    def follow_path(self, value: str) -> None:
        """Show the folder ``value`` names in the tree (if it is one)."""
        folder = Path(value.strip()).expanduser()
        if value.strip() and folder.is_dir():
            self.query_one("#data-tree", TextFolderTree).show_folder(folder)

    @on(DirectoryTree.DirectorySelected, "#data-tree")
    def _folder_picked(self, event: DirectoryTree.DirectorySelected) -> None:
        self._pick(event.path)

    @on(DirectoryTree.FileSelected, "#data-tree")
    def _file_picked(self, event: DirectoryTree.FileSelected) -> None:
        self._pick(event.path.parent)

    def _pick(self, path: Path) -> None:
        text = self._display_path(path)
        self._from_tree = text
        self.query_one("#data-path", Input).value = text
        self.start_validation(text)

    @staticmethod
    def _display_path(path: Path) -> str:
        """A path as short as it can be shown: relative to the current folder when inside it."""
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
        except ValueError:
            return str(path)

    @on(Select.Changed, "#data-qa")
    def _qa_changed(self, event: Select.Changed) -> None:
        if event.value == self.wizard.qa or event.value is Select.BLANK:
            return
        self.wizard.qa = str(event.value)
        report = self.wizard.report
        if report is not None and report.ok:
            self.start_preview(report)

    # -- validating ----------------------------------------------------------------------------
    def start_validation(self, path: str) -> None:
        """Validate ``path`` in a worker; the way on stays closed until the report says ok."""
        self.wizard.report = None
        self._validated_path = None
        self.query_one("#error-panel").display = False
        self.query_one("#data-verdict", Static).update(Text(f"Checking {path}…"))
        self.query_one("#data-summary", Static).update("")
        self.query_one("#data-dataset", Static).update("")
        self.query_one("#data-files").display = False
        self._clear_preview()
        self.validate_folder(path)

    @work(thread=True, exclusive=True, name="validate-data", group="data", exit_on_error=False)
    def validate_folder(self, path: str) -> None:
        """The core's validation (reads every file once) off the UI thread."""
        report = backend.validate_folder(path, self.wizard.settings)
        dataset = None
        if report.ok:
            try:  # lengths (estimated), duplicates and leakage, before training (issue 23)
                dataset = backend.dataset_report(report, self.wizard.settings, self.wizard.preset or None)
            except Exception:  # noqa: BLE001 - the report is extra: the folder is still usable
                dataset = None
        if not get_current_worker().is_cancelled:
            self.post_message(DataValidated(path, report, dataset))

    @on(DataValidated)
    def _validated(self, message: DataValidated) -> None:
        report = message.report
        self.wizard.data_path = message.path
        self.wizard.report = report
        self.wizard.plan = None  # a new folder means a new plan
        self._validated_path = message.path
        self.show_report(report)
        self.show_dataset(message.dataset)
        if report.ok:
            self.start_preview(report)
            self.query_one("#data-body").focus()

    def show_blocked(self, sentence: str) -> None:
        """A folder that cannot be used: say why, keep the way on closed."""
        self.wizard.report = None
        verdict = self.query_one("#data-verdict", Static)
        verdict.set_classes("verdict-blocked")
        verdict.update(Text(f"✖ Blocked: {sentence}"))

    def show_report(self, report: DataReport) -> None:
        """Draw the validation report: verdict, problems, summary and the per-file table."""
        errors, warnings = report.errors, report.warnings
        verdict = self.query_one("#data-verdict", Static)
        text = Text()
        if not report.ok:
            verdict.set_classes("verdict-blocked")
            text.append("✖ Blocked: " + (errors[0] if errors else "this folder can not be used."), "bold")
            for error in errors[1:]:
                text.append("\n  ✖ " + error)
        elif warnings:
            verdict.set_classes("verdict-warnings")
            text.append(f"⚠ Usable, with {len(warnings)} warning(s). n: on to the plan.", "bold")
        else:
            verdict.set_classes("verdict-ok")
            text.append("✔ Ready to train. n: on to the plan.", "bold")
        for warning in warnings:
            text.append("\n  ⚠ " + warning)
        verdict.update(text)
        self.query_one("#data-summary", Static).update(Text("\n".join(report_summary(report))))

        table = self.query_one("#data-files", Static)
        table.update(files_table(report))
        table.display = bool(report.files)

    def show_dataset(self, dataset: DatasetReport | None) -> None:
        """The dataset report's totals: token lengths against the limit, duplicates, leakage (issue 23)."""
        lines = dataset.short_lines() if dataset is not None else []
        self.query_one("#data-dataset", Static).update(Text("\n".join(lines)))

    # -- preview -------------------------------------------------------------------------------
    def _clear_preview(self) -> None:
        self.query_one("#data-preview", Vertical).remove_children()
        self.query_one("#data-preview-status", Static).update("")
        self.query_one("#data-preview-title").display = False

    def start_preview(self, report: DataReport) -> None:
        """Build examples with the chosen Q&A mode and render a few (a worker: may load a tokenizer)."""
        self._clear_preview()
        self.query_one("#data-preview-title").display = True
        self.query_one("#data-preview-status", Static).update(Text("Building examples…"))
        self.build_preview(report, self.wizard.qa, self.wizard.model, self._validated_path or "")

    @work(thread=True, exclusive=True, name="build-preview", group="preview", exit_on_error=False)
    def build_preview(self, report: DataReport, qa: str, model: str, path: str) -> None:
        """Examples as the run will build them, and a few rendered through the chat template."""
        worker = get_current_worker()

        def confirm(plan: backend.ServerPlan) -> bool:
            body = plan.describe()
            return self.llm_app.ask_from_thread(
                "Send text to the Q&A server?",
                f"{body}\n\nYour text leaves this machine for the server. Go ahead?",
                yes="Send", no="Stay offline")

        def on_message(text: str) -> None:
            if not worker.is_cancelled:
                self.post_message(PreviewProgress(str(text)))

        def show(text: str) -> None:
            if not worker.is_cancelled:
                self.post_message(PreviewProgress(text))

        # The core's progress line: chunks done, and how long a silent server has kept us waiting.
        from llmcustoms.qa.progress import GenerationProgress

        progress = GenerationProgress(show)

        result = backend.build_preview(report, qa, model, confirm=confirm, on_message=on_message,
                                       progress=progress, preset=self.wizard.preset)
        if not worker.is_cancelled:
            self.post_message(PreviewReady(path=path, **result))

    @on(PreviewProgress)
    def _preview_progress(self, message: PreviewProgress) -> None:
        self.query_one("#data-preview-status", Static).update(Text(message.text))

    @on(PreviewReady)
    def _preview_ready(self, message: PreviewReady) -> None:
        if message.path != self._validated_path:
            return  # a preview for a folder the user has since left
        head = f"{fmt_count(message.total)} examples ({message.qa_mode})"
        if message.message:
            head += f" — {message.message.rstrip('.')}"
        if message.samples:
            head += f". A sample of {len(message.samples)}, next to the text each came from:"
        self.query_one("#data-preview-status", Static).update(Text(head))
        box = self.query_one("#data-preview", Vertical)
        box.remove_children()
        box.mount_all([self._sample_widget(sample, message.template_note) for sample in message.samples])

    @staticmethod
    def _sample_widget(sample: PreviewSample, note: str) -> Vertical:
        source = Static(Text.assemble((f"{sample.source}\n", "bold"), sample.source_text or "—"),
                        classes="sample-source")
        pair = Static(Text.assemble(("Q: ", "bold"), sample.question, "\n", ("A: ", "bold"), sample.answer),
                      classes="sample-pair")
        parts: list[Any] = [Horizontal(source, pair, classes="sample-row")]
        if sample.rendered:
            parts.append(Static(Text(note, style="italic"), classes="sample-note"))
            parts.append(Static(Text(sample.rendered), classes="sample-rendered"))
        elif note:
            parts.append(Static(Text(note, style="italic"), classes="sample-note"))
        return Vertical(*parts, classes="sample")

    def show_worker_error(self, worker_name: str, text: str) -> None:
        if worker_name == "build-preview":
            self.query_one("#data-preview-status", Static).update(Text(f"✖ The preview failed: {text}"))
            return
        if worker_name == "validate-data":
            self.show_blocked(text)
            return
        super().show_worker_error(worker_name, text)

    # -- keys ----------------------------------------------------------------------------------
    def action_next(self) -> None:
        """n: on to the plan, only with a folder that is not blocked."""
        report = self.wizard.report
        if report is None:
            self.notify("Choose a data folder first (Enter in the path box checks it).", severity="warning")
            return
        if not report.ok:
            errors = report.errors or ["this folder can not be used."]
            self.notify(f"Blocked: {errors[0]}", title="Fix the data first", severity="error")
            return
        self.llm_app.goto("plan")

    def action_view_text(self) -> None:
        """v: the text read from each file, as the model will learn it."""
        report = self.wizard.report
        if report is None or not report.usable_files:
            self.notify("Check a folder first: its files' text shows here once it is read.", severity="warning")
            return
        from llmcustoms_tui.screens.file_text import FileTextScreen

        self.app.push_screen(FileTextScreen(report))

    def action_revalidate(self) -> None:
        """ctrl+r: check the folder again (after fixing files)."""
        value = self.query_one("#data-path", Input).value.strip()
        if value:
            self.start_validation(value)

    def action_focus_tree(self) -> None:
        """ctrl+t: the folder tree."""
        self.query_one("#data-tree").focus()

    def action_focus_path(self) -> None:
        """ctrl+l: the path box."""
        self.query_one("#data-path").focus()
