"""Step 3: the plan — which model and preset, why, whether it fits in memory, and how long it takes.

The recommendation and the estimate are the core's (``make_plan``); this screen shows them and lets
the user change model or preset. A choice that will not fit says so before anything starts. When a
GROQ_API_KEY is set and the Q&A mode would use the server, the screen shows what would be sent and
where, and training starts only after the user confirms sending (the run records that consent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, RadioButton, RadioSet, Select, Static
from textual.worker import get_current_worker

from llmcustoms_tui import backend
from llmcustoms_tui.format import fmt_mb, fmt_minutes, tui_hint
from llmcustoms_tui.messages import PlanReady
from llmcustoms_tui.screens.base import WizardScreen
from llmcustoms_tui.screens.confirm import ConfirmScreen
from llmcustoms_tui.widgets.gauge import MemoryGauge

if TYPE_CHECKING:  # the core is imported inside functions (backend): the TUI starts without torch
    from llmcustoms.core.planner import Plan
    from llmcustoms.qa.cost import GenerationPlan


class PlanScreen(WizardScreen):
    """Recommended model and preset, the memory estimate, the time, and the choice to change them."""

    STEP = "plan"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "start", "Start training", id="start"),
        Binding("m", "focus_model", "Model", id="focus-model"),
        Binding("p", "focus_preset", "Preset", id="focus-preset"),
    ]
    #: What training would send to the Q&A server (None: nothing), the (qa, preset) it was worked out
    #: for (None: not yet), and why working it out failed.
    send_plan: GenerationPlan | None = None
    send_plan_for: tuple[str, str] | None = None
    send_plan_error: str | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="plan-body", classes="body"):
            yield Static(Text("Working out a plan…"), id="plan-reason")
            yield MemoryGauge(label="Memory", label_width=7, mode="need", id="plan-memory")
            yield Static(id="plan-fit")
            yield Static(id="plan-facts")
            yield Static(id="plan-send")
            yield Static(id="error-panel", classes="error-panel")
            with Horizontal(id="plan-choices"):
                with Vertical(id="plan-model-box"):
                    yield Label("Model (m)", classes="section-title")
                    yield Select(self._model_options(), value=self._initial_model(), allow_blank=False,
                                 id="plan-model")
                with Vertical(id="plan-preset-box"):
                    yield Label("Preset (p)", classes="section-title")
                    with RadioSet(id="plan-preset"):
                        for name, description in backend.preset_choices():
                            yield RadioButton(f"{name}: {description}", value=name == self.wizard.preset,
                                              name=name)

    def _model_options(self) -> list[tuple[str, str]]:
        return backend.model_choices(extra=self.wizard.model)

    def _initial_model(self) -> str:
        return self.wizard.model or "auto"

    def on_mount(self) -> None:
        self.query_one("#error-panel").display = False
        self.query_one("#plan-memory").display = False
        self.check_sending()
        if self.wizard.plan is not None and self.wizard.plan.preset == self.wizard.preset:
            self.show_plan(self.wizard.plan)
        else:
            self.replan()
        presets = self.query_one("#plan-preset", RadioSet)
        # Focused without scrolling to it: the screen opens at its top (the plan), even at 80×24 where the
        # presets are below the fold; p or Tab reaches them.
        presets.focus(scroll_visible=False)
        # Start the list's cursor on the chosen preset, not on the first one (RadioSet has no public
        # setter for its cursor; ``_selected`` is the reactive its own key handlers move).
        if presets.pressed_index >= 0:
            presets._selected = presets.pressed_index
        self.call_after_refresh(self.query_one("#plan-body", VerticalScroll).scroll_home, animate=False)

    # -- choices -------------------------------------------------------------------------------
    @on(Select.Changed, "#plan-model")
    def _model_changed(self, event: Select.Changed) -> None:
        if event.value is Select.BLANK or event.value == self.wizard.model:
            return
        self.wizard.model = str(event.value)
        self.replan()

    @on(RadioSet.Changed, "#plan-preset")
    def _preset_changed(self, event: RadioSet.Changed) -> None:
        name = event.pressed.name or ""
        if name and name != self.wizard.preset:
            self.wizard.preset = name
            self.replan()
            self.check_sending()  # the pairs asked per chunk depend on the preset

    # -- planning ------------------------------------------------------------------------------
    def replan(self) -> None:
        """Ask the core for a plan for the current choices (in a worker: it may look at the model)."""
        self.wizard.plan = None
        self.query_one("#error-panel").display = False
        self.query_one("#plan-reason", Static).update(Text("Working out a plan…"))
        self.make_plan(self.wizard.model, self.wizard.preset)

    @work(thread=True, exclusive=True, name="make-plan", group="plan", exit_on_error=False)
    def make_plan(self, model: str, preset: str) -> None:
        """The core's planner off the UI thread."""
        plan = backend.make_plan(model, preset, self.wizard.report, self.wizard.hardware, self.wizard.settings)
        if not get_current_worker().is_cancelled:
            self.post_message(PlanReady(model, preset, plan))

    @on(PlanReady)
    def _plan_ready(self, message: PlanReady) -> None:
        if message.model != self.wizard.model or message.preset != self.wizard.preset:
            return  # the user changed the choice meanwhile; a newer plan is coming
        self.wizard.plan = message.plan
        self.show_plan(message.plan)

    # -- what goes to the Q&A server ------------------------------------------------------------
    def sends_text(self) -> bool:
        """Whether the run would use the Q&A server (a key is set and the Q&A mode is not offline)."""
        return self.wizard.qa != "offline" and backend.groq_key_present(self.wizard.settings)

    def check_sending(self) -> None:
        """Work out what training would send to the Q&A server, if anything (in a worker: reads the folder)."""
        self.send_plan, self.send_plan_for, self.send_plan_error = None, None, None
        line = self.query_one("#plan-send", Static)
        if not self.sends_text():
            line.display = False
            self.send_plan_for = (self.wizard.qa, self.wizard.preset)
            return
        line.display = True
        line.update(Text("Q&A: working out what would be sent to the server…"))
        self.make_send_plan(self.wizard.data_path or "", self.wizard.qa, self.wizard.preset)

    @work(thread=True, exclusive=True, name="send-plan", group="send-plan", exit_on_error=False)
    def make_send_plan(self, data_path: str, qa: str, preset: str) -> None:
        """The core's generation plan off the UI thread (nothing is sent)."""
        plan = backend.generation_plan(data_path, qa, preset, self.wizard.settings)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._send_plan_ready, (qa, preset), plan)

    def _send_plan_ready(self, key: tuple[str, str], plan: GenerationPlan | None) -> None:
        if key != (self.wizard.qa, self.wizard.preset):
            return  # made for an earlier choice; a newer one is coming
        self.send_plan, self.send_plan_for = plan, key
        line = self.query_one("#plan-send", Static)
        if plan is None:
            line.update(Text("Q&A: built on this machine; nothing is sent to a server."))
        elif plan.to_send == 0:
            line.update(Text(f"Q&A: all {plan.chunks} chunks were already generated by "
                             f"{plan.name} (cached); nothing is sent."))
        else:
            line.update(Text(f"⚠ Q&A: {plan.to_send} chunks of your text go to "
                             f"{plan.name} ({plan.server}); "
                             "you confirm before training starts.", style="bold"))

    def needs_send_confirmation(self) -> bool:
        """Whether starting means sending text to the server (so the user must say yes first)."""
        plan = self.send_plan
        return plan is not None and plan.to_send != 0

    def show_plan(self, plan: Plan) -> None:
        """Draw the plan: the reason, memory against free memory, the settings and the time."""
        reason = tui_hint(plan.reason or "", on_plan_screen=True)
        self.query_one("#plan-reason", Static).update(Text(reason or "No reason given.", style="bold"))
        estimate = plan.estimate_mb
        free = plan.free_mb
        gauge = self.query_one("#plan-memory", MemoryGauge)
        gauge.display = estimate is not None and bool(free)
        gauge.set_memory(estimate, free)
        fits = plan.fits
        fit = self.query_one("#plan-fit", Static)
        unavailable = self.unavailable_text(plan)
        if fits:
            line = f"✔ Fits: needs about {fmt_mb(estimate)} of {fmt_mb(free)} free." + \
                ("" if unavailable else " n: start training.")
        else:
            line = (f"✖ Will not fit: needs about {fmt_mb(estimate)}, only {fmt_mb(free)} free. "
                    "Pick a smaller model or the highspeed preset.")
        fit.set_classes("fit-ok" if fits and not unavailable else "fit-no")
        # A model that cannot be had is said first: nothing can start until another one is picked.
        fit.update(Text(f"✖ {unavailable}\n{line}" if unavailable else line))

        config = plan.config
        facts: list[tuple[str, str]] = [("Model", plan.model), ("Preset", plan.preset)]
        facts.append(("Batch", f"{config.per_device_train_batch_size} × accumulation "
                               f"{config.gradient_accumulation_steps or 1}"))
        # What will run, from the plan's own config (the CPU adjustments included), not the preset's numbers.
        facts.append(("Runs as", plan.runs_as()))
        facts.append(("Steps", plan.steps_text(self.wizard.max_steps)))
        if config.max_seq_len:
            facts.append(("Sequence", f"up to {config.max_seq_len} tokens"))
        if config.lora_rank:
            facts.append(("LoRA", plan.lora_text()))
        facts.append(("Time", fmt_minutes(plan.estimated_minutes)))
        # Two facts a row: the plan fits above the choices even at 80×24.
        table = Table.grid(padding=(0, 2))
        for _ in range(2):
            table.add_column(style="bold", no_wrap=True)
            table.add_column()
        for index in range(0, len(facts), 2):
            row = [*facts[index], *(facts[index + 1] if index + 1 < len(facts) else ("", ""))]
            table.add_row(*row)
        self.query_one("#plan-facts", Static).update(table)

    @staticmethod
    def unavailable_text(plan: Plan) -> str:
        """Why the plan's model cannot be had now and which key picks one that can ('' when it can)."""
        if plan.available:
            return ""
        why = tui_hint(plan.availability or "The model cannot be had now.", on_plan_screen=True)
        alternative = plan.offline_alternative
        if alternative and f"pick {alternative}" not in why:
            it = "it" if str(alternative) in why else f"{alternative}, the embedded model (works offline)"
            why = f"{why.rstrip('.')}. Press m to pick {it}."
        return why

    def show_worker_error(self, worker_name: str, text: str) -> None:
        if worker_name == "make-plan":
            self.query_one("#plan-reason", Static).update(Text("No plan for this choice.", style="bold"))
        if worker_name == "send-plan":
            self.send_plan_error = text
            self.query_one("#plan-send", Static).update(Text(f"✖ Q&A: {text}"))
        super().show_worker_error(worker_name, text)

    # -- keys ----------------------------------------------------------------------------------
    def action_focus_model(self) -> None:
        """m: the model selector."""
        self.query_one("#plan-model").focus()

    def action_focus_preset(self) -> None:
        """p: the preset list."""
        self.query_one("#plan-preset").focus()

    def action_start(self) -> None:
        """n: start training (asks first when the plan says it will not fit, and before sending text)."""
        plan = self.wizard.plan
        if plan is None:
            self.notify("The plan is not ready yet.", severity="warning")
            return
        if self.send_plan_for != (self.wizard.qa, self.wizard.preset):
            self.notify(f"Cannot start: {self.send_plan_error}" if self.send_plan_error else
                        "Still working out what would be sent to the Q&A server…", severity="warning")
            return
        unavailable = self.unavailable_text(plan)
        if unavailable:
            # Starting would only fail once the download does: say it now, with the key that helps.
            self.notify(unavailable, title="Cannot start", severity="error", timeout=12)
            return
        if not plan.fits:
            self.app.push_screen(
                ConfirmScreen("This will not fit in memory",
                              f"{plan.reason}\n\nThe run will most likely stop with an out-of-"
                              "memory error. Start anyway?", yes="Start anyway", no="Change the plan", danger=True),
                self._start_confirmed)
            return
        self._start_confirmed(True)

    def _start_confirmed(self, go: bool | None) -> None:
        if not go:
            return
        if self.needs_send_confirmation():
            body = self.send_plan.describe() if self.send_plan is not None else ""
            self.app.push_screen(
                ConfirmScreen("Send text to the Q&A server?",
                              f"{body}\n\nTraining starts by sending these chunks of your text to the server: "
                              "it leaves this machine. Go ahead?\n(To train without sending, choose offline Q&A "
                              "on the data screen.)", yes="Send and start", no="Not now"),
                self._send_confirmed)
            return
        self.llm_app.start_run()

    def _send_confirmed(self, go: bool | None) -> None:
        if go:
            self.llm_app.start_run(send_consent=True)
        else:
            self.notify("Nothing was started or sent. To train without sending, choose offline Q&A on the data "
                        "screen.", severity="warning")
