"""transformers' ``TrainingArguments`` for a run's config: steps, batches, precision, schedule, saving."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmcustoms.hardware.cpu import cpu_bf16_autocast_ok
from llmcustoms.runs.rundir import RunDir

if TYPE_CHECKING:
    from transformers import TrainingArguments


def training_arguments(config: dict[str, Any], run: RunDir, device: str) -> TrainingArguments:
    """The ``TrainingArguments`` a run with ``config`` on ``device`` trains with, saving into ``run``."""
    from transformers import TrainingArguments

    warmup = int(math.ceil(config["max_steps"] * float(config.get("warmup_ratio", 0.0))))
    precision = config.get("precision", "fp32")
    bf16 = device == "cuda" and precision in ("bf16", "4bit")
    if device == "cpu" and config.get("bf16_autocast"):
        # autocast on CPUs with native bf16 (avx512_bf16/AMX): ~1.5× faster. The plan's flag comes from the
        # CPU's flags; cpu_bf16_autocast_ok() also runs a quick forward/backward check once per process.
        bf16 = cpu_bf16_autocast_ok()
    return TrainingArguments(
        output_dir=str(run.checkpoints_dir),
        max_steps=int(config["max_steps"]),
        per_device_train_batch_size=int(config["per_device_train_batch_size"]),
        per_device_eval_batch_size=int(config.get("per_device_eval_batch_size")
                                       or config["per_device_train_batch_size"]),
        gradient_accumulation_steps=int(config["gradient_accumulation_steps"]),
        learning_rate=float(config["learning_rate"]),
        warmup_steps=warmup,
        lr_scheduler_type="cosine",
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss must be seen (and stop the run), not averaged away
        eval_strategy="steps",
        eval_steps=int(config["eval_steps"]),
        save_strategy="steps",
        save_steps=int(config["save_steps"]),
        save_total_limit=None,  # pruned by RunTrainer, only after the newer checkpoint is complete
        seed=int(config["seed"]),
        data_seed=int(config["seed"]),
        bf16=bf16,
        fp16=device == "cuda" and precision == "fp16",
        optim=config.get("optim", "adamw_torch"),
        use_cpu=device == "cpu",
        # The tracker resolved before the run (training/tracking.py): tensorboard by default, none, or
        # wandb/mlflow when named; transformers' own integration writes it.
        report_to=[] if config.get("report_to", "none") == "none" else [str(config["report_to"])],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        gradient_checkpointing=False,  # handled when the model is loaded
        # FSDP (--fsdp, with --num-processes) shards the frozen base across the processes, for models
        # that do not fit one card; DDP (the default) keeps a whole copy on each.
        fsdp="full_shard auto_wrap" if config.get("fsdp") else "",
        fsdp_config={"use_orig_params": True} if config.get("fsdp") else None,
        ddp_find_unused_parameters=False,
    )
