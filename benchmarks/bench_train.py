"""Training throughput: plain transformers Trainer + PEFT against LLMCustoms' own training path.

Usage:
    .venv/bin/python benchmarks/bench_train.py                      # CPU, 2 timed steps × 3 repeats
    .venv/bin/python benchmarks/bench_train.py --steps 4 --repeats 5
    .venv/bin/python benchmarks/bench_train.py --device cuda        # on a GPU box (section "## Training (CUDA)")
    .venv/bin/python benchmarks/bench_train.py --profile            # also: where ours spends a step (torch profiler)

Four ways to train the same LoRA (r=8, alpha 16, dropout 0.05, all linear layers) on SmolLM2-135M
(the embedded model), same examples, same number of optimizer steps, 8 examples per step:

  (a) hf_padded   the common tutorial: fp32, every example padded to max length (512) with an
                  attention mask; Trainer batch 4 × accumulation 2.
  (b) hf_dynamic  the same with dynamic padding (DataCollatorForSeq2Seq pads each batch of 4 to its longest).
  (c) ours        LLMCustoms' path: the examples packed into ≤512-token rows (``pack_examples``, positions
                  restart per example, no mask), ``PackedCollator``, the Trainer arguments of
                  ``arguments.training_arguments`` for the config ``resolve_train_config`` gives on this
                  machine (bf16 autocast where the CPU has native bf16), and the dashboard's
                  ``EventCallback`` writing events.jsonl. Where bf16 is chosen, ``load_for_training``
                  stores the frozen base Linear weights in bf16 (LoRA weights and optimizer state fp32)
                  and casts each norm's output to bf16 once (``models/cpu_bf16.py``); LoRA dropout
                  masks come from ``FastDropout``; the loss is a chunked, fused output projection +
                  cross-entropy over exactly the learnt tokens (``answer_loss.fused_linear_cross_entropy``).
                  The run's examples are packed as a whole (as a real run packs its training set) and
                  the rows dealt out over the same number of steps.
  (d) no_waste    the ceiling: this model's own forward+backward+optimizer step on full 512-token rows of
                  real tokens, nothing padded, same precision as (c), a bare loop with no Trainer.
  (e) hf_best     what a careful user gets from transformers alone: ``DataCollatorWithFlattening`` (each
                  micro-batch of 4 flattened into one padding-free row, positions restarting per example)
                  and ``TrainingArguments(bf16=True)`` (bf16 autocast over fp32 weights), same LoRA, same
                  examples, batch 4 × accumulation 2. The headline ratio is computed against this one.

(a) and (b) are kept for history; their precision is the ``--baseline-precision`` (fp32 by default).

Counted: real (non-padding) tokens per second of wall time over the timed steps (the first step of
every run is a warm-up and is not timed). The four run in turn, in a rotating order, ``--repeats``
times; the table has medians. The examples are chat Q&A pairs rendered with the model's chat
template, lengths drawn log-uniform between 40 and 400 tokens (many short answers, a few long ones,
like Q&A built from documents: median ~125, mean ~155 tokens, about half of them answer tokens).

Loss agreement: on one batch of 8 examples, each example's mean loss from the packed rows is
compared with the same example run alone (no autocast; and under bf16 autocast where ours uses it), and
with the padded batch of (a). Identical within rounding is the requirement. The model is ours as
loaded for training, so where bf16 is chosen its frozen base weights are bf16 even without autocast.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, load_average, machine, median, now, table, write_section  # noqa: E402

CONFIGS = ("hf_padded", "hf_dynamic", "ours", "no_waste", "hf_best")
EXTRA_CONFIGS: tuple[str, ...] = ()  # configurations run only on request (--configs); none at present
LABELS = {
    "hf_padded": "(a) Trainer+PEFT fp32, padded to max length",
    "hf_dynamic": "(b) Trainer+PEFT fp32, dynamic padding",
    "ours": "(c) LLMCustoms: packed rows + our Trainer arguments",
    "no_waste": "(d) no-waste: full rows, forward+backward",
    "hf_best": "(e) Trainer+PEFT, DataCollatorWithFlattening + bf16=True (autocast)",
}
LORA_RANK = 8  # alpha and dropout are the quality preset's, as resolve_train_config gives them (16, 0.05)
LEARNING_RATE = 5e-4  # the quality preset's; every configuration uses it
MICRO_BATCH, ACCUMULATION = 4, 2  # the baselines' 8 examples per optimizer step
IGNORE = -100

WORDS = ("the harbour of Velmor was founded by a council of salt merchants who built a lighthouse and a "
         "stone bridge across the river before the first ferry ran to the northern islands every summer "
         "the museum keeps their ledgers maps and letters which describe storms lanterns festivals mills "
         "markets and the long journey of engineers who rebuilt the quay after the great flood of 1841 "
         "visitors arrive by train or by boat and most of them walk along the old wall to the tower where "
         "a bell still rings at noon the library holds records of every ship that anchored in the bay").split()


# --------------------------------------------------------------------------- examples


def _prose_ids(tokenizer, words: int, rng: random.Random) -> list[int]:
    text = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def make_examples(tokenizer, count: int, max_len: int, seed: int = 0, low: int = 40, high: int = 400):
    """``count`` tokenized chat examples (``tokenize_examples`` rows) with lengths log-uniform in [low, high].

    The lengths are the distribution's ``count`` evenly spaced quantiles (then shuffled), so even a
    small run has exactly the stated mix rather than a lucky or unlucky draw of it.
    """
    from llmcustoms.data.tokenize import tokenize_examples
    from llmcustoms.data.types import Example

    rng = random.Random(seed)
    stream = _prose_ids(tokenizer, 40_000, rng)
    probe = tokenize_examples([Example([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                                       "probe")], tokenizer, max_len)
    overhead = int(probe[0]["length"]) - 2  # the chat template's own tokens (SmolLM2 adds a system prompt)
    targets = [int(round(math.exp(math.log(low) + (i + 0.5) / count * (math.log(high) - math.log(low)))))
               for i in range(count)]
    rng.shuffle(targets)
    examples, cursor = [], 0
    for target in targets:
        content = max(8, target - overhead)
        question = max(4, int(content * 0.4))
        if cursor + content >= len(stream):
            cursor = 0
        q_text = tokenizer.decode(stream[cursor:cursor + question]).strip()
        a_text = tokenizer.decode(stream[cursor + question:cursor + content]).strip()
        cursor += content
        examples.append(Example([{"role": "user", "content": q_text.capitalize() + "?"},
                                 {"role": "assistant", "content": a_text.capitalize() + "."}],
                                f"bench:{len(examples)}", kind="generated"))
    dataset = tokenize_examples(examples, tokenizer, max_len)
    return [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in dataset]


def packing_at_scale(tokenizer, max_len: int, count: int = 2000) -> dict[str, float]:
    """How full ``pack_examples`` fills rows for ``count`` examples of the same mix (a real run's training set)."""
    from llmcustoms.data.packing import pack_examples

    features = make_examples(tokenizer, count, max_len, seed=7)
    rows = pack_examples(features, max_len)
    real = sum(len(f["input_ids"]) for f in features)
    return {"examples": count, "rows": len(rows), "fill": real / (len(rows) * max_len)}


def mix_summary(features: list[dict[str, list[int]]]) -> dict[str, float]:
    """Length statistics of the example mix."""
    lengths = sorted(len(f["input_ids"]) for f in features)
    answer = sum(sum(1 for x in f["labels"] if x != IGNORE) for f in features)
    return {"n": len(lengths), "min": lengths[0], "median": lengths[len(lengths) // 2],
            "mean": round(sum(lengths) / len(lengths), 1), "max": lengths[-1],
            "answer_fraction": round(answer / sum(lengths), 3)}


# --------------------------------------------------------------------------- models


def lora_settings(model_path: str, device: str) -> dict[str, Any]:
    """rank, alpha and dropout of ours' LoRA: every configuration uses exactly these."""
    config = ours_config(model_path, device, 1, 512)
    return {k: config[k] for k in ("lora_rank", "lora_alpha", "lora_dropout")}


def load_plain(model_path: str, device: str, precision: str):
    """The tutorial's model: AutoModelForCausalLM + get_peft_model with the same LoRA config as ours."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if device == "cuda":
        model = model.to("cuda")
    same = lora_settings(model_path, device)
    lora = LoraConfig(r=same["lora_rank"], lora_alpha=same["lora_alpha"], lora_dropout=float(same["lora_dropout"]),
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def ours_config(model_path: str, device: str, steps: int, max_len: int) -> dict[str, Any]:
    """The config LLMCustoms would train with on this machine, with the benchmark's steps and batch shape."""
    from llmcustoms.training.choices import resolve_train_config
    from llmcustoms.training.request import TrainRequest

    request = TrainRequest(data_path=".", model=model_path, preset="quality", device=device, max_steps=steps,
                           max_seq_len=max_len)
    config, _ = resolve_train_config(request, "smollm2-135m", device)
    # One dataset item is one optimizer step's rows (see StepRows): batch 1 item, no accumulation.
    config.update(lora_rank=LORA_RANK, learning_rate=LEARNING_RATE, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                  warmup_ratio=0.0, max_steps=steps, save_steps=steps, eval_steps=steps)
    return config


# --------------------------------------------------------------------------- Trainer runs


class StepTimer:
    """A TrainerCallback (built lazily) recording each optimizer step's wall time and logged loss."""

    def __new__(cls, device: str):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self.cpu: list[float] = []  # process CPU seconds (all threads) per step
                self.losses: list[float] = []
                self._last = self._last_cpu = 0.0

            def _sync(self) -> None:
                if device == "cuda":
                    import torch

                    torch.cuda.synchronize()

            def on_train_begin(self, args, state, control, **kwargs):
                self._sync()
                self._last, self._last_cpu = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kwargs):
                self._sync()
                stamp, cpu = time.perf_counter(), time.process_time()
                self.times.append(stamp - self._last)
                self.cpu.append(cpu - self._last_cpu)
                self._last, self._last_cpu = stamp, cpu

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    self.losses.append(float(logs["loss"]))

        return _Timer()


class StepRows:
    """Collates one dataset item (one optimizer step's packed rows) with the project's ``PackedCollator``.

    Everything else (``tokens_seen``, ``tokens_trained``, ``attach``: what the dashboard's callback
    reads) is the inner collator's. ``real_per_batch`` keeps each batch's real tokens in order.
    """

    def __init__(self, pad_token_id: int) -> None:
        from llmcustoms.data.packing import PackedCollator

        self.inner = PackedCollator(pad_token_id)
        self.computed = 0  # tokens the model computes, padding included
        self.real_per_batch: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [row for item in items for row in item["rows"]]
        batch = self.inner(rows)
        self.computed += batch["input_ids"].numel()
        self.real_per_batch.append(sum(len(r["input_ids"]) for r in rows))
        return batch


def _baseline_args(out: str, steps: int, device: str, precision: str):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=ACCUMULATION, learning_rate=LEARNING_RATE, logging_steps=1,
        save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=device == "cpu",
        bf16=precision == "bf16", seed=0,
        train_sampling_strategy="sequential",  # every configuration sees the examples in one order
    )


def run_hf(kind: str, features, model_path: str, tokenizer, steps: int, device: str, max_len: int,
           precision: str) -> dict[str, Any]:
    """(a) or (b): transformers Trainer + PEFT, padded to ``max_len`` or dynamically."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, default_data_collator

    torch.manual_seed(0)
    # (e) keeps fp32 weights: bf16=True means autocast over them, not bf16 weights.
    model = load_plain(model_path, device, "fp32" if kind == "hf_best" else precision)
    pad = tokenizer.pad_token_id
    if kind == "hf_best":
        from transformers import DataCollatorWithFlattening

        data = [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features]
        collator = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
        precision = "bf16"
    elif kind == "hf_padded":  # what tokenizer(..., padding="max_length", max_length=512) gives
        data = [{"input_ids": f["input_ids"] + [pad] * (max_len - len(f["input_ids"])),
                 "attention_mask": [1] * len(f["input_ids"]) + [0] * (max_len - len(f["input_ids"])),
                 "labels": f["labels"] + [IGNORE] * (max_len - len(f["labels"]))} for f in features]
        collator = default_data_collator
    else:
        data = [{"input_ids": f["input_ids"], "attention_mask": [1] * len(f["input_ids"]), "labels": f["labels"]}
                for f in features]
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE)
    computed = [0]

    def counting(batch):
        out = collator(batch)
        computed[0] += out["input_ids"].numel()
        return out

    timer = StepTimer(device)
    with tempfile.TemporaryDirectory() as out:
        args = _baseline_args(out, steps, device, precision)
        if kind == "hf_best":
            args.remove_unused_columns = False  # position_ids come from the collator
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=counting, callbacks=[timer])
        trainer.train()
    real_per_step = [sum(len(f["input_ids"]) for f in features[i * 8:(i + 1) * 8]) for i in range(steps)]
    del trainer, model
    return {"times": timer.times, "cpu": timer.cpu, "real_per_step": real_per_step, "losses": timer.losses,
            "computed": computed[0], "real": sum(real_per_step)}


def deal_rows(features, steps: int, max_len: int) -> list[dict[str, Any]]:
    """The run's examples packed as a whole, and the rows dealt out in order over ``steps`` steps."""
    from llmcustoms.data.packing import pack_examples

    rows = pack_examples(features, max_len)
    per_step = [rows[len(rows) * i // steps:len(rows) * (i + 1) // steps] for i in range(steps)]
    return [{"rows": group} for group in per_step]


def run_ours(features, model_path: str, tokenizer, steps: int, device: str, max_len: int) -> dict[str, Any]:
    """(c): the project's loading, packing, collator, Trainer class and arguments, and event callback."""
    import torch
    from transformers import PrinterCallback, Trainer

    from llmcustoms.hardware.cpu import settle_cpu_training
    from llmcustoms.models.loading import load_for_training
    from llmcustoms.runs.events import JsonlEventSink
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.arguments import training_arguments
    from llmcustoms.training.callbacks import EventCallback

    try:  # the project's Trainer subclass (crash-safe checkpoints), where it exists
        from llmcustoms.training.run_trainer import RunTrainer as TrainerClass
    except ImportError:  # pragma: no cover - older trees
        TrainerClass = Trainer

    torch.manual_seed(0)
    config = ours_config(model_path, device, steps, max_len)
    model, _ = load_for_training(model_path, settle_cpu_training(config))
    attn_used = model.config._attn_implementation
    items = deal_rows(features, steps, max_len)
    collator = StepRows(tokenizer.pad_token_id)
    if hasattr(collator.inner, "attach"):
        collator.attach(model)  # as run_training does: the dashboard counts tokens at each forward pass
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory() as out:
        run = RunDir(out)
        sink = JsonlEventSink(run.events_path)
        args = training_arguments(config, run, device)
        # Only the schedule changes: no evaluation or checkpoint inside the timed steps, and the
        # rows in the order dealt (every configuration sees the same examples).
        args = dataclasses.replace(args, eval_strategy="no", save_strategy="no",
                                   train_sampling_strategy="sequential")
        trainer = TrainerClass(model=model, args=args, train_dataset=items, data_collator=collator,
                               callbacks=[EventCallback(sink, collator, device), timer])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        sink.close()
        events = run.events_path.read_text().count("\n")
    real_per_step = collator.real_per_batch[:len(timer.times)]
    result = {"times": timer.times, "cpu": timer.cpu, "real_per_step": real_per_step, "losses": timer.losses,
              "computed": collator.computed, "real": sum(collator.real_per_batch), "bf16": bool(args.bf16),
              "rows": sum(len(item["rows"]) for item in items), "events": events,
              "attention": attn_used}
    del trainer, model
    return result


def run_no_waste(features, model_path: str, steps: int, device: str, max_len: int, rows_per_step: int,
                 bf16: bool) -> dict[str, Any]:
    """(d): full rows of real tokens, forward+backward+AdamW step in a bare loop, ours' precision."""
    import torch

    from llmcustoms.hardware.cpu import settle_cpu_training
    from llmcustoms.models.loading import load_for_training

    torch.manual_seed(0)
    config = ours_config(model_path, device, steps, max_len)
    model, _ = load_for_training(model_path, settle_cpu_training(config))
    model.train()
    stream = [t for f in features for t in f["input_ids"]]
    need = steps * rows_per_step * max_len
    stream = (stream * (need // max(1, len(stream)) + 1))[:need]
    batches = torch.tensor(stream).view(steps, rows_per_step, max_len)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    autocast = (torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    times, cpu, losses = [], [], []
    for ids in batches:
        ids = ids.to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        with autocast:
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    del model, optimizer
    per_step = rows_per_step * max_len
    return {"times": times, "cpu": cpu, "real_per_step": [per_step] * steps, "losses": losses, "computed": need,
            "real": need}


# --------------------------------------------------------------------------- loss agreement


def per_example_losses(model, features, mode: str, device: str, bf16: bool, pad_id: int) -> list[float]:
    """Each example's mean loss over its answer tokens: 'alone' (one at a time), 'packed' or 'padded'."""
    import torch

    from llmcustoms.data.packing import PackedCollator, pack_examples

    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def token_losses(logits, labels):
        # position t predicts token t+1, as the model's own loss does
        return torch.nn.functional.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=IGNORE,
                                                 reduction="none"), labels[1:] != IGNORE

    out: list[float] = []
    with torch.no_grad(), autocast:
        if mode == "alone":
            for f in features:
                ids = torch.tensor([f["input_ids"]], device=device)
                loss, mask = token_losses(model(input_ids=ids, use_cache=False).logits[0],
                                          torch.tensor(f["labels"], device=device))
                out.append(float(loss[mask].mean()))
        elif mode == "padded":
            width = max(len(f["input_ids"]) for f in features)
            ids = torch.tensor([f["input_ids"] + [pad_id] * (width - len(f["input_ids"])) for f in features],
                               device=device)
            mask = torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features],
                                device=device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            for i, f in enumerate(features):
                loss, keep = token_losses(logits[i, :len(f["input_ids"])], torch.tensor(f["labels"], device=device))
                out.append(float(loss[keep].mean()))
        else:
            rows = pack_examples(features, 512)
            batch = {k: v.to(device) for k, v in PackedCollator(pad_id)(rows).items()}
            logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
            found: dict[int, float] = {}
            for r, row in enumerate(rows):
                # examples start where the positions restart; find each one by its tokens
                starts = [p for p, pos in enumerate(row["position_ids"]) if pos == 0] + [len(row["input_ids"])]
                for s, e in zip(starts[:-1], starts[1:], strict=True):
                    i = next(i for i, f in enumerate(features)
                             if i not in found and f["input_ids"] == row["input_ids"][s:e])
                    loss, keep = token_losses(logits[r, s:e], torch.tensor(features[i]["labels"], device=device))
                    found[i] = float(loss[keep].mean())
            out = [found[i] for i in range(len(features))]
    return out


def loss_agreement(model_path: str, features, device: str, bf16: bool, pad_id: int) -> dict[str, Any]:
    """Per-example losses: packed vs alone vs padded, fp32 and (where ours uses it) bf16 autocast."""
    import torch

    from llmcustoms.hardware.cpu import settle_cpu_training
    from llmcustoms.models.loading import load_for_training

    config = ours_config(model_path, device, 1, 512)
    # fp32 weights for the fp32 comparisons (what packing alone changes); ours' own model (on a CPU with bf16:
    # frozen base weights in bf16, LoRA in fp32) for the bf16 ones.
    torch.manual_seed(0)
    model, _ = load_for_training(model_path, settle_cpu_training(dict(config, bf16_autocast=False)))
    model.eval()
    alone = per_example_losses(model, features, "alone", device, False, pad_id)
    packed = per_example_losses(model, features, "packed", device, False, pad_id)
    padded = per_example_losses(model, features, "padded", device, False, pad_id)
    del model
    result: dict[str, Any] = {
        "n": len(features), "alone_fp32": alone, "packed_fp32": packed,
        "max_abs_packed_vs_alone_fp32": max(abs(a - b) for a, b in zip(packed, alone, strict=True)),
        "max_abs_padded_vs_alone_fp32": max(abs(a - b) for a, b in zip(padded, alone, strict=True)),
    }
    if bf16:
        torch.manual_seed(0)
        model, _ = load_for_training(model_path, settle_cpu_training(config))
        model.eval()
        alone16 = per_example_losses(model, features, "alone", device, True, pad_id)
        packed16 = per_example_losses(model, features, "packed", device, True, pad_id)
        result["max_abs_packed_vs_alone_bf16"] = max(abs(a - b) for a, b in zip(packed16, alone16, strict=True))
        result["max_abs_bf16_vs_fp32"] = max(abs(a - b) for a, b in zip(packed16, alone, strict=True))
        del model
    return result


# --------------------------------------------------------------------------- profile


def profile_ours(features, model_path: str, tokenizer, device: str, max_len: int, top: int = 15) -> str:
    """torch.profiler's top operators for one optimizer step of ours, as text."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llmcustoms.data.packing import PackedCollator, pack_examples
    from llmcustoms.hardware.cpu import settle_cpu_training
    from llmcustoms.models.loading import load_for_training

    config = ours_config(model_path, device, 1, max_len)
    model, _ = load_for_training(model_path, settle_cpu_training(config))
    model.train()
    from llmcustoms.hardware.cpu import cpu_bf16_autocast_ok

    bf16 = device == "cuda" or (bool(config.get("bf16_autocast")) and cpu_bf16_autocast_ok())
    batch = PackedCollator(tokenizer.pad_token_id)(pack_examples(features, max_len)[:3])
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    for _ in range(2):  # the first call warms the allocator and oneDNN's kernels
        with autocast:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        with autocast:
            loss = model(**batch, use_cache=False).loss
        loss.backward()
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


# --------------------------------------------------------------------------- main


def cpu_share(result: dict[str, Any], warmup: int, threads: int) -> float:
    """The process's CPU time over the timed steps as a share of ``threads`` cores for their wall time.

    Near 100 %: the run had its cores to itself. Well below: other work took them (the rate is then low).
    """
    wall, cpu = sum(result["times"][warmup:]), sum(result.get("cpu", [])[warmup:])
    return cpu / (wall * threads) if wall > 0 and result.get("cpu") else float("nan")


def rate(result: dict[str, Any], warmup: int) -> float:
    """Real tokens per second over the timed (post-warm-up) steps."""
    times = result["times"][warmup:]
    tokens = result["real_per_step"][warmup:len(result["times"])]
    return sum(tokens) / sum(times) if times and sum(times) > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, update RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, default=2, help="timed optimizer steps per run (default 2)")
    parser.add_argument("--warmup", type=int, help="untimed first steps per run (default: 1 on the CPU, 3 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default 3)")
    parser.add_argument("--max-len", type=int, default=512, help="max sequence length / row length (default 512)")
    parser.add_argument("--model", help="a model folder (default: the embedded SmolLM2-135M)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="which of " + ",".join(CONFIGS + EXTRA_CONFIGS) + " (default: the first five)")
    parser.add_argument("--baseline-precision", choices=("fp32", "bf16"), default="fp32",
                        help="precision of (a) and (b) (fp32: the tutorial setup)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators for ours")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--no-write", action="store_true", help="leave benchmarks/RESULTS.md alone")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS + EXTRA_CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    if args.warmup is None:
        args.warmup = 3 if args.device == "cuda" else 1  # CUDA's first steps also pick and load kernels

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_train: --device cuda asked for, but torch sees no CUDA GPU.", file=sys.stderr)
        return 2
    from llmcustoms.hardware.cpu import apply_torch_threads

    threads = apply_torch_threads() if args.device == "cpu" else torch.get_num_threads()
    import transformers

    transformers.logging.set_verbosity_error()
    from llmcustoms.models.loading import load_tokenizer

    if args.model:
        model_path = args.model
    else:
        from llmcustoms.models.manager import ModelManager

        model_path = str(ModelManager().ensure_embedded())
    tokenizer = load_tokenizer(model_path)
    total_steps = args.warmup + args.steps
    features = make_examples(tokenizer, total_steps * MICRO_BATCH * ACCUMULATION, args.max_len)
    random.Random(1).shuffle(features)
    mix = mix_summary(features)
    load_at_start = load_average()
    print(f"machine: {machine(args.device)}; load {load_at_start}")
    print(f"examples: {mix}")

    ours_bf16 = _ours_bf16(model_path, args)
    agreement = loss_agreement(model_path, features[:8], args.device, ours_bf16, tokenizer.pad_token_id)
    print("loss agreement:", {k: v for k, v in agreement.items() if k.startswith("max")})
    at_scale = packing_at_scale(tokenizer, args.max_len)
    ours_rows = sum(len(item["rows"]) for item in deal_rows(features, total_steps, args.max_len))
    rows_per_step = max(1, round(ours_rows / total_steps))  # (d) computes as many rows a step as ours

    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        order = configs[repeat % len(configs):] + configs[:repeat % len(configs)]  # rotate: drift hits all
        for name in order:
            started = time.perf_counter()
            if name in ("hf_padded", "hf_dynamic", "hf_best"):
                result = run_hf(name, features, model_path, tokenizer, total_steps, args.device, args.max_len,
                                args.baseline_precision)
            elif name == "ours":
                result = run_ours(features, model_path, tokenizer, total_steps, args.device, args.max_len)
            else:
                result = run_no_waste(features, model_path, total_steps, args.device, args.max_len, rows_per_step,
                                      ours_bf16)
            result["tokens_per_s"] = rate(result, args.warmup)
            result["cpu_share"] = cpu_share(result, args.warmup, threads) if args.device == "cpu" else float("nan")
            results[name].append(result)
            gc.collect()
            print(f"  repeat {repeat + 1}/{args.repeats} {name:<10} {result['tokens_per_s']:7.1f} real tok/s "
                  f"(steps {', '.join(f'{t:.2f}' for t in result['times'])} s; CPU share {_pct(result['cpu_share'])}; "
                  f"run {time.perf_counter() - started:.0f} s)",
                  flush=True)
    load_at_end = load_average()

    summary = summarize(results, configs)
    lora = lora_settings(model_path, args.device)
    attention = results["ours"][0]["attention"] if results.get("ours") else "?"
    text = render(summary, mix, agreement, args, threads, load_at_start, load_at_end, rows_per_step, ours_bf16,
                  lora, attention, at_scale)
    print()
    print(text)
    if args.profile:
        profiled = profile_ours(features, model_path, tokenizer, args.device, args.max_len)
        print("\nwhere one step of ours spends its time (torch.profiler):\n" + profiled)
        text += ("\n\nWhere one forward+backward of ours (3 packed rows) spends its time, torch.profiler, top "
                 "operators by self time:\n\n```\n" + profiled.strip() + "\n```")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "mix": mix, "agreement": agreement,
                                               "raw": results}, indent=1, default=str))
    if not args.no_write:
        heading = "## Training (CPU)" if args.device == "cpu" else "## Training (CUDA)"
        write_section(heading, text)
        print(f"\nupdated benchmarks/RESULTS.md ({heading})")
    return 0


def _ours_bf16(model_path: str, args) -> bool:
    """Whether ours trains under bf16 autocast here (the same decision ``_training_arguments`` makes)."""
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.arguments import training_arguments

    config = ours_config(model_path, args.device, 1, args.max_len)
    with tempfile.TemporaryDirectory() as out:
        return bool(training_arguments(config, RunDir(out), args.device).bf16)


def _pct(share: float) -> str:
    """A share as 'NN %', or '—' where it was not measured (CUDA)."""
    return f"{100 * share:.0f} %" if share == share else "—"


def summarize(results: dict[str, list[dict[str, Any]]], configs: list[str]) -> dict[str, dict[str, Any]]:
    """Medians per configuration, with the share of computed tokens that were real."""
    summary: dict[str, dict[str, Any]] = {}
    for name in configs:
        runs = results[name]
        rates = [r["tokens_per_s"] for r in runs]
        summary[name] = {
            "median_tokens_per_s": median(rates), "all": [round(x, 1) for x in rates],
            "cpu_share": [round(r.get("cpu_share", float("nan")), 3) for r in runs],
            "real_fraction": runs[0]["real"] / max(1, runs[0]["computed"]) if runs else float("nan"),
            "mean_loss": (sum(runs[0]["losses"]) / len(runs[0]["losses"])) if runs and runs[0]["losses"]
            else float("nan"),
        }
    return summary


def render(summary, mix, agreement, args, threads: int, load_start: str, load_end: str, rows_per_step: int,
           ours_bf16: bool, lora: dict[str, Any], attention: str, at_scale: dict[str, float]) -> str:
    """The RESULTS.md section (also printed)."""
    ours = summary.get("ours", {}).get("median_tokens_per_s", float("nan"))
    rows = []
    for name, s in summary.items():
        ratio = ours / s["median_tokens_per_s"] if s["median_tokens_per_s"] else float("nan")
        rows.append([LABELS[name], f"{s['median_tokens_per_s']:.1f}",
                     ", ".join(f"{x:.1f} ({_pct(c)})" for x, c in zip(s["all"], s["cpu_share"], strict=True)),
                     f"{100 * s['real_fraction']:.0f} %", "—" if name == "ours" else f"{ratio:.2f}×"])
    lines = [
        f"Measured {now()} on {machine(args.device)}; load average {load_start} at the start, {load_end} at "
        f"the end (other work shares these cores: medians of {args.repeats} runs, configurations in rotating "
        f"order; a run's CPU share is its process CPU time over {threads} cores × its wall time — well under "
        f"100 % means other work took the cores during that run). Command: `{command_line()}`.",
        "",
        f"{'SmolLM2-135M (embedded)' if not args.model else args.model}, LoRA r={lora['lora_rank']} alpha "
        f"{lora['lora_alpha']} dropout {lora['lora_dropout']} on all linear layers (every configuration), learning rate "
        f"{LEARNING_RATE}, {MICRO_BATCH * ACCUMULATION} examples per optimizer step, {args.warmup} warm-up + "
        f"{args.steps} timed steps per run, max length {args.max_len}, {threads} torch threads. Example mix: "
        f"{mix['n']} chat Q&A examples, lengths log-uniform 40–400 tokens (min {mix['min']}, median "
        f"{mix['median']}, mean {mix['mean']}, max {mix['max']}; {100 * mix['answer_fraction']:.0f} % answer "
        f"tokens), like Q&A built from documents.",
        "",
        table(["configuration", "real tokens/s (median)", "runs (CPU share)", "real share of computed tokens",
               "ours is ×"], rows),
        "",
    ]
    def ratio(name: str) -> float:
        base = summary.get(name, {}).get("median_tokens_per_s")
        return ours / base if base else float("nan")

    key = "speedup_vs_hf_padded" if args.device == "cpu" else "speedup_vs_hf_padded_cuda"
    best_key = "speedup_vs_hf_best" if args.device == "cpu" else "speedup_vs_hf_best_cuda"
    if args.device == "cuda":
        precision_reason = "CUDA: the model loaded in bf16"
    else:
        precision_reason = "the CPU has native bf16" if ours_bf16 else "no native bf16 on this CPU: fp32"
    plain = "fp32" if args.device == "cpu" else "the model's dtype"
    lines += [
        f"{best_key} = {ratio('hf_best'):.2f}" if "hf_best" in summary else f"{best_key} = not measured",
        "",
        f"- vs (e) the best plain transformers setup (DataCollatorWithFlattening + bf16=True autocast): "
        f"{ratio('hf_best'):.2f}× (issue 13's target ≥ 1.5×"
        + ("; NOT reached" if not ratio('hf_best') >= 1.5 else "; reached") + ").",
        "",
        f"{key} = {ratio('hf_padded'):.2f} (history: against an fp32 padded tutorial baseline)",
        "",
        f"- vs (a) padded to max length: {ratio('hf_padded'):.2f}× (target ≥ 4×); "
        f"vs (b) dynamic padding: {ratio('hf_dynamic'):.2f}× (target ≥ 1.5×); "
        f"share of the no-waste rate (d): {100 * ratio('no_waste'):.0f} % (target ≥ 90 %).",
        f"- Ours: attention `{attention}`, the dashboard's EventCallback writing events.jsonl every step, "
        f"bf16 autocast: {'yes' if ours_bf16 else 'no'} "
        f"({precision_reason}); (d) uses the same "
        f"precision, {rows_per_step} full rows of {args.max_len} per step. Ours asks the model for logits only "
        f"where a token is learnt (`training/answer_loss.py`: {100 * mix['answer_fraction']:.0f} % of the tokens of "
        "this mix; the same loss, tested in value and gradient) while (d) projects every token onto the "
        "vocabulary, which is how ours can pass 100 % of (d).",
        f"- Loss agreement on {agreement['n']} examples, per-example mean loss, max |difference|: packed vs "
        f"each alone ({plain}) {agreement['max_abs_packed_vs_alone_fp32']:.2e}; padded batch vs alone ({plain}) "
        f"{agreement['max_abs_padded_vs_alone_fp32']:.2e}"
        + (f"; packed vs alone under bf16 autocast {agreement['max_abs_packed_vs_alone_bf16']:.2e} "
           f"(bf16 vs fp32 itself: {agreement['max_abs_bf16_vs_fp32']:.2e})"
           if "max_abs_packed_vs_alone_bf16" in agreement else "") + ".",
        f"- Packing: this run packs only its own {mix['n']} examples, so some rows are part-filled (the real share "
        f"above); a real run packs its whole training set: {at_scale['examples']:,} examples of this mix fill "
        f"{at_scale['rows']} rows to {100 * at_scale['fill']:.1f} % of their {args.max_len} tokens.",
        "- Mean training loss over each run's steps (first run): "
        + ", ".join(f"{n} {s['mean_loss']:.3f}" for n, s in summary.items()) + " ((d) trains on every token).",
    ]
    return "\n".join(lines)



if __name__ == "__main__":
    sys.exit(main())
