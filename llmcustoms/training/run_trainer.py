"""transformers' Trainer with the changes a long run needs.

- Checkpoints are declared complete only after every file is written (``checkpoints.py``), then
  older ones are pruned; so a kill in the middle of a save never leaves a checkpoint to resume from
  that is missing its optimizer or data position.
- A checkpoint save that fails (a full disk) removes what it half wrote; a full disk is a
  ``DiskSpaceError`` sentence (``disk_full.py``), not a library's traceback.
- A stop requested during an evaluation ends it between two batches (``EvaluationStopped``).
- An out-of-memory error during *evaluation* halves the evaluation batch and tries again (at batch 1
  it skips that evaluation with a warning); it never reaches the training loop's back-off, so it can
  not shrink training.
- The training loss asks the model for logits only where a token is learnt (``answer_only_loss``):
  prompts are not learnt, so their vocabulary projection and softmax are wasted work (~20 % of a
  small model's compute at a 49 k vocabulary). The loss is the one the model computes itself. On the
  CPU the output projection and cross-entropy are fused and chunked over exactly the learnt tokens
  (``answer_loss.fused_linear_cross_entropy``): no [tokens × vocabulary] tensor is ever made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Trainer

from llmcustoms.runs.events import EventSink, make_event
from llmcustoms.training import checkpoints
from llmcustoms.training.answer_loss import answer_only_loss, supports_answer_only_logits
from llmcustoms.training.disk_full import checkpoint_disk_error, folder_bytes, is_disk_full
from llmcustoms.training.oom import free_device_memory, is_oom


class EvaluationStopped(Exception):  # noqa: N818 - a signal between a callback and evaluate(), not an error
    """Raised by a callback between evaluation batches when a stop was requested; ``evaluate`` returns {}."""


class RunTrainer(Trainer):
    """A Trainer whose checkpoints are crash-safe and whose evaluation survives OOM."""

    def __init__(self, *args: Any, emit: EventSink | None = None, keep_checkpoints: int = checkpoints.KEEP,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.emit = emit or (lambda event: None)
        self.keep_checkpoints = keep_checkpoints
        self.answer_only = supports_answer_only_logits(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's own causal-LM loss, with logits computed only at the learnt positions."""
        if (return_outputs or not self.answer_only or "labels" not in inputs
                or self.label_smoother is not None or self.compute_loss_func is not None):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        import torch

        # The loss is computed outside the model's autocast: it is told the precision the projection runs in.
        compute_dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        loss = answer_only_loss(model, inputs, num_items_in_batch, compute_dtype=compute_dtype)
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs \
                and num_items_in_batch is not None:
            # As Trainer.compute_loss: num_items_in_batch was summed over every process.
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return loss

    def _save_checkpoint(self, model, trial) -> None:
        root = Path(self._get_output_dir(trial=trial))
        folder = root / f"checkpoint-{self.state.global_step}"
        try:
            super()._save_checkpoint(model, trial)
            if not self.args.should_save:
                return  # not the saving process (multi-GPU ranks other than 0)
            checkpoints.mark_complete(folder)
        except Exception as error:
            self._failed_save(error, root, folder)
            raise
        checkpoints.prune(root, self.keep_checkpoints)

    def _failed_save(self, error: Exception, root: Path, folder: Path) -> None:
        """A save that failed leaves nothing half written; a full disk becomes one sentence (DiskSpaceError)."""

        previous = checkpoints.latest_complete(root)
        # The newest complete checkpoint is the best estimate of what this one needed.
        needed = folder_bytes(previous) if previous is not None and previous != folder else None
        if self.args.should_save:
            checkpoints.remove_partial(folder)
        if is_disk_full(error, root, needed):
            run_id = root.parent.name if root.name == "checkpoints" else None
            raise checkpoint_disk_error(root / folder.name, self.state.global_step, needed, run_id) from error

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """The held-out metrics; {} when evaluation was skipped (OOM at batch 1) or a stop ended it."""
        while True:
            failed = False
            try:
                return super().evaluate(*args, **kwargs)
            except EvaluationStopped:
                return {}  # the user asked to stop: no loss for this evaluation
            except Exception as error:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not is_oom(error):
                    raise
                failed = True
            # Outside the except block: the traceback (and the activations it pins) is gone now.
            if failed:
                if self.model is not None:
                    self.model.zero_grad(set_to_none=True)
                free_device_memory()
                if not self._shrink_eval_batch():
                    return {}

    def _shrink_eval_batch(self) -> bool:
        batch = int(self.args.per_device_eval_batch_size)
        step = self.state.global_step
        if batch <= 1:
            self.emit(make_event("warning", step=step, health="eval_oom",
                                 message=f"Out of memory during evaluation at step {step} even with batch 1: "
                                         "this evaluation is skipped; training goes on unchanged."))
            return False
        self.args.per_device_eval_batch_size = batch // 2
        self.emit(make_event("oom_retry", step=step, phase="eval", per_device_eval_batch_size=batch // 2,
                             message=f"Out of memory during evaluation: evaluation batch {batch} → {batch // 2} "
                                     "(training is not changed)."))
        return True
