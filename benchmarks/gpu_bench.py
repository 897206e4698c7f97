"""The GPU check: the memory estimate against measured peaks, small-card budgets, throughput and MFU.

Run through ``benchmarks/gpu_check.sh`` on a CUDA machine (it installs a carried bitsandbytes wheel).
No weights are downloaded: models are built from their published architectures with random weights
(memory and speed do not depend on the weights' values), saved once, and loaded through the
project's own ``models.loading`` (bf16 LoRA and 4-bit NF4 QLoRA).

Parts, each guarded so one failure (an OOM above all) is a row in the table, not the end:

1. the ceiling: a large bf16 matmul's TFLOP/s (MFU is measured against it) and the CUDA context size;
2. the estimate matrix: TinyLlama's architecture × the three presets (their micro-batch and LoRA
   rank) × 512 / 1024 tokens × bf16 / 4-bit × gradient checkpointing off / on: a few LoRA steps
   each, ``torch.cuda.max_memory_reserved`` against ``estimate_training_memory``'s allocator peak;
3. small cards: for ``MAX_VRAM_GB`` = 4, 6, 8 the allocator is capped with
   ``set_per_process_memory_fraction`` and the configuration ``HardwareDetector`` recommends for that
   budget (and the model it suggests) is loaded and trained for a few steps: no OOM allowed;
4. plain transformers ``Trainer`` + PEFT in bf16 on the same card, for throughput.

``--quick`` runs everything on a tiny architecture (and on the CPU when there is no GPU) to test the
script itself. Results: a table on stdout, and JSON + Markdown under ``--out`` (default ``$OUT``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc as gcmod
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from llmcustoms.hardware.detector import HardwareDetector  # noqa: E402
from llmcustoms.models.loading import add_lora, load_base_model  # noqa: E402
from llmcustoms.models.registry import MODELS  # noqa: E402
from llmcustoms.planning import memory  # noqa: E402
from llmcustoms.planning.presets import get_preset  # noqa: E402

MB = 1024 * 1024
CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
START = time.time()
LOG: list[str] = []


def say(message: str) -> None:
    line = f"[{time.time() - START:6.1f}s] {message}"
    LOG.append(line)
    print(line, flush=True)


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def clean() -> None:
    gcmod.collect()
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def reserved_mb() -> int:
    return int(torch.cuda.memory_reserved() // MB) if CUDA else 0


# --- 1. ceilings ------------------------------------------------------------------------------------
def matmul_tflops(n: int) -> float:
    """bf16 matmul TFLOP/s on random data: the mean of 10 products after 3 warm-ups."""
    a = torch.randn(n, n, device=DEV, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEV, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    seconds = (time.perf_counter() - t0) / 10
    del a, b
    clean()
    return 2 * n**3 / seconds / 1e12


def context_mb() -> int | None:
    """Device memory in use outside PyTorch's allocator (the CUDA context, cuBLAS, loaded kernels)."""
    if not CUDA:
        return None
    free, total = torch.cuda.mem_get_info()
    return int((total - free - torch.cuda.memory_reserved()) // MB)


# --- models with random weights -----------------------------------------------------------------
def arch_config(name: str, quick: bool):
    """A transformers LlamaConfig with the registry model's published architecture (tiny under --quick)."""
    from transformers import LlamaConfig

    if quick:
        return LlamaConfig(vocab_size=32000, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                           tie_word_embeddings=False)
    spec = MODELS[name]
    return LlamaConfig(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
                       intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
                       num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
                       max_position_embeddings=2048, tie_word_embeddings=spec.tied_embeddings,
                       rms_norm_eps=1e-5, rope_theta=10000.0)


def build_model_dir(name: str, quick: bool, base: Path) -> tuple[Path, Any]:
    """A saved bf16 model folder with ``name``'s architecture and random weights."""
    from transformers import LlamaForCausalLM

    folder = base / f"{name}-random"
    config = arch_config(name, quick)
    if (folder / "config.json").is_file():
        return folder, config
    t0 = time.time()
    torch.manual_seed(0)
    with torch.device(DEV):
        model = LlamaForCausalLM(config)  # random init on the GPU: seconds instead of a minute on CPU
    model.to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    del model
    clean()
    say(f"built {name} architecture with random weights in {time.time() - t0:.0f}s")
    return folder, config


# --- training steps -----------------------------------------------------------------------------
def set_checkpointing(model, enabled: bool) -> None:
    base = model.get_base_model()
    if enabled:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.enable_input_require_grads()
    else:
        base.gradient_checkpointing_disable()
    base.config.use_cache = False


def train_steps(model, vocab: int, micro: int, seq: int, steps: int) -> dict[str, Any]:
    """``steps`` LoRA steps as the project's trainer runs them (bf16 autocast, AdamW, clipping)."""
    clean()
    before = reserved_mb()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, vocab, (micro, seq), device=DEV)
    model.train()
    times: list[float] = []
    losses: list[float] = []
    autocast = torch.autocast(DEV, dtype=torch.bfloat16) if CUDA else contextlib.nullcontext()
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss  # the output (and its logits) dropped at once
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    step_s = statistics.median(times[1:]) if len(times) > 1 else times[0]
    result = {
        "tokens_per_s": round(micro * seq / step_s, 1),
        "step_s": round(step_s, 4),
        "peak_reserved_mb": int(torch.cuda.max_memory_reserved() // MB) if CUDA else None,
        "peak_allocated_mb": int(torch.cuda.max_memory_allocated() // MB) if CUDA else None,
        "reserved_before_mb": before,
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
    }
    del optimizer, ids, params
    return result


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def load(folder: Path, precision: str, preset: str, gc: bool) -> Any:
    cfg = get_preset(preset)
    train_config = {"device": DEV, "precision": precision if CUDA else "fp32", "gradient_checkpointing": gc,
                    "lora_rank": cfg["lora_rank"], "lora_alpha": cfg["lora_alpha"],
                    "lora_dropout": cfg["lora_dropout"]}
    model = load_base_model(str(folder), train_config)
    return add_lora(model, train_config)


# --- the parts ----------------------------------------------------------------------------------
def estimate_matrix(folder: Path, config, args, rows: list[dict[str, Any]], peak_tflops: float) -> None:
    precisions = ["bf16", "4bit"] if CUDA and bnb_available() else ["bf16"]
    arch = memory.arch_from_config(config.to_dict(), name="tinyllama")
    for precision in precisions:
        for preset in ("highspeed", "quality", "bestaccuracy"):
            cfg = get_preset(preset)
            micro, rank = int(cfg["per_device_train_batch_size"]), int(cfg["lora_rank"])
            if time.time() - START > args.budget_s:
                say(f"time budget spent: skipping {precision} {preset}")
                continue
            try:
                clean()
                model = load(folder, precision, preset, gc=False)
                weights_mb = reserved_mb()
            except Exception as error:  # a failed load is a row, not the end of the check
                rows.append({"part": "estimate", "model": "tinyllama", "preset": preset, "precision": precision,
                             "error": f"load: {type(error).__name__}: {error}"[:300]})
                say(f"load failed {precision} {preset}: {error}")
                continue
            for seq in args.seq_lens:
                for gc in (False, True):
                    row = {"part": "estimate", "model": "tinyllama", "preset": preset, "precision": precision,
                           "seq_len": seq, "micro_batch": micro, "lora_rank": rank, "gradient_checkpointing": gc,
                           "weights_reserved_mb": weights_mb}
                    est = memory.estimate_training_memory(arch, precision, micro, seq, rank, gc, device="cuda")
                    row["estimate"] = est
                    row["estimate_mb"] = est["allocator_peak_mb"]
                    try:
                        set_checkpointing(model, gc)
                        row.update(train_steps(model, config.vocab_size, micro, seq, args.steps))
                        row["mfu"] = round(4 * arch.total_params * row["tokens_per_s"] / (peak_tflops * 1e12), 4)
                        if row["peak_reserved_mb"]:
                            row["error_pct"] = round(100 * (est["allocator_peak_mb"] / row["peak_reserved_mb"] - 1), 1)
                    except Exception as error:
                        row["error"] = ("OOM: " if is_oom(error) else "") + f"{type(error).__name__}: {error}"[:300]
                        if not is_oom(error):
                            traceback.print_exc()
                    rows.append(row)
                    say(short(row))
            del model
            clean()


def small_cards(folders: dict[str, tuple[Path, Any]], args, rows: list[dict[str, Any]]) -> None:
    """MAX_VRAM_GB = 4, 6, 8: the allocator capped, the recommended configuration trained."""
    total_mb = torch.cuda.get_device_properties(0).total_memory / MB if CUDA else 0
    for budget_gb, model_name, preset in args.card_cases:
        if time.time() - START > args.budget_s:
            say(f"time budget spent: skipping {budget_gb} GB {model_name} {preset}")
            continue
        detector = HardwareDetector(env_config={"MAX_VRAM_GB": budget_gb, "FORCE_CPU": False,
                                                "DEFAULT_PRESET": preset})
        if model_name == "suggested":
            model_name = detector.suggest_model(int(budget_gb * 1024))
        folder, config = folders.get(model_name) or folders["tinyllama"]
        arch = memory.arch_from_config(config.to_dict(), name=model_name)
        plan = detector.get_training_config(model_name, int(budget_gb * 1024), preset=preset)
        micro, seq = plan["per_device_train_batch_size"], plan["max_seq_len"]
        if args.quick:
            seq = min(seq, 256)
        row = {"part": "card", "budget_gb": budget_gb, "model": model_name, "preset": preset,
               "precision": plan["precision"], "gradient_checkpointing": plan["gradient_checkpointing"],
               "micro_batch": micro, "seq_len": seq, "lora_rank": plan["lora_rank"],
               "reason": plan["reason"], "fits_by_estimate": plan["fits"]}
        est = memory.estimate_training_memory(arch, plan["precision"], micro, seq, plan["lora_rank"],
                                              plan["gradient_checkpointing"], device="cuda")
        row["estimate"] = est
        row["estimate_mb"] = est["allocator_peak_mb"]
        model = None
        try:
            clean()
            if CUDA:
                fraction = memory.allocator_cap_fraction(budget_gb, total_mb)
                torch.cuda.set_per_process_memory_fraction(fraction)
                row["allocator_cap_mb"] = int(fraction * total_mb)
            model = load(folder, plan["precision"], preset, plan["gradient_checkpointing"])
            row.update(train_steps(model, config.vocab_size, micro, seq, args.steps))
            row["trained"] = True
            if row.get("peak_reserved_mb"):
                row["error_pct"] = round(100 * (est["allocator_peak_mb"] / row["peak_reserved_mb"] - 1), 1)
        except Exception as error:
            row["trained"] = False
            row["error"] = ("OOM: " if is_oom(error) else "") + f"{type(error).__name__}: {error}"[:300]
            if not is_oom(error):
                traceback.print_exc()
        finally:
            del model
            clean()
            if CUDA:
                torch.cuda.set_per_process_memory_fraction(1.0)
        rows.append(row)
        say(short(row))


def plain_trainer(folder: Path, config, args, rows: list[dict[str, Any]], peak_tflops: float) -> None:
    """Plain transformers Trainer + PEFT LoRA in bf16 (the usual recipe), quality preset, 512 tokens."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    cfg = get_preset("quality")
    micro, seq = int(cfg["per_device_train_batch_size"]), 512 if not args.quick else 256
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync()
            times.append(time.perf_counter() - self.t0)

    row = {"part": "plain_trainer", "model": "tinyllama", "preset": "quality", "precision": "bf16",
           "seq_len": seq, "micro_batch": micro, "lora_rank": cfg["lora_rank"], "gradient_checkpointing": False}
    try:
        clean()
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if CUDA else torch.float32)
        model.to(DEV)
        model = get_peft_model(model, LoraConfig(r=cfg["lora_rank"], lora_alpha=cfg["lora_alpha"],
                                                 lora_dropout=0.05, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        gen = torch.Generator().manual_seed(0)
        data = [{"input_ids": ids, "labels": ids} for ids in
                torch.randint(0, config.vocab_size, (micro * (args.steps + 4), seq), generator=gen)]
        training_args = TrainingArguments(
            output_dir="/tmp/llmc-plain-trainer", max_steps=args.steps + 2, per_device_train_batch_size=micro,
            learning_rate=1e-4, bf16=CUDA, use_cpu=not CUDA, logging_steps=1000, save_strategy="no",
            report_to=[], disable_tqdm=True, dataloader_num_workers=0)
        clean()
        Trainer(model=model, args=training_args, train_dataset=data, callbacks=[Timer()]).train()
        step_s = statistics.median(times[2:]) if len(times) > 2 else times[-1]
        row["tokens_per_s"] = round(micro * seq / step_s, 1)
        row["peak_reserved_mb"] = int(torch.cuda.max_memory_reserved() // MB) if CUDA else None
        arch = memory.arch_from_config(config.to_dict())
        row["mfu"] = round(4 * arch.total_params * row["tokens_per_s"] / (peak_tflops * 1e12), 4)
        del model
    except Exception as error:
        row["error"] = ("OOM: " if is_oom(error) else "") + f"{type(error).__name__}: {error}"[:300]
        traceback.print_exc()
    clean()
    rows.append(row)
    say(short(row))


# --- reporting ----------------------------------------------------------------------------------
def bnb_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        return False
    return True


def short(row: dict[str, Any]) -> str:
    keys = ("part", "budget_gb", "model", "preset", "precision", "seq_len", "micro_batch", "gradient_checkpointing",
            "estimate_mb", "peak_reserved_mb", "error_pct", "tokens_per_s", "mfu", "error")
    return " ".join(f"{k}={row[k]}" for k in keys if k in row)


def table(rows: list[dict[str, Any]], gpu: str) -> str:
    lines = ["| part | model | preset | seq_len | precision | grad ckpt | micro | estimate_mb | peak_vram_mb | "
             "error % | tokens_per_s | MFU | GPU | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        part = r["part"] if r["part"] != "card" else f"MAX_VRAM_GB={r['budget_gb']:g}"
        note = r.get("error", "")
        if r["part"] == "card" and r.get("trained"):
            note = f"trained, no OOM (cap {r.get('allocator_cap_mb')} MB)"
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else ""
        lines.append(
            f"| {part} | {r.get('model', '')} | {r.get('preset', '')} | {r.get('seq_len', '')} | {r.get('precision', '')} "
            f"| {'yes' if r.get('gradient_checkpointing') else 'no'} | {r.get('micro_batch', '')} "
            f"| {r.get('estimate_mb', '')} | {r.get('peak_reserved_mb', '') or ''} | {r.get('error_pct', '')} "
            f"| {r.get('tokens_per_s', '')} | {mfu} | {gpu} | {note} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny architecture: test this script (CPU is fine)")
    parser.add_argument("--steps", type=int, default=4, help="training steps a case (the first is warm-up)")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the full results")
    parser.add_argument("--budget-s", type=float, default=400.0, help="skip the cases left after this many seconds")
    parser.add_argument("--work", default="/tmp/llmc-gpu-check", help="where the random models are saved")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: estimate,cards,plain")
    args = parser.parse_args()
    args.seq_lens = (256, 512) if args.quick else (512, 1024)
    args.card_cases = [(4, "tinyllama", "highspeed"), (4, "tinyllama", "quality"), (4, "tinyllama", "bestaccuracy"),
                       (6, "tinyllama", "quality"),
                       (8, "tinyllama", "quality"), (6, "suggested", "quality"), (8, "suggested", "quality")]
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    gpu = torch.cuda.get_device_name(0) if CUDA else f"CPU ({platform.processor() or platform.machine()})"
    info: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "gpu": gpu, "torch": torch.__version__,
                            "cuda": torch.version.cuda, "quick": args.quick, "bitsandbytes": bnb_available()}
    for module in ("transformers", "peft", "accelerate", "bitsandbytes"):
        with contextlib.suppress(Exception):
            info[module] = __import__(module).__version__
    say(f"device: {gpu}; {json.dumps(info)}")
    if CUDA:
        torch.zeros(1, device="cuda")
        info["context_mb_at_init"] = context_mb()
        info["total_mb"] = int(torch.cuda.get_device_properties(0).total_memory // MB)
    peak = matmul_tflops(512 if args.quick or not CUDA else 8192)
    info["matmul_bf16_tflops"] = round(peak, 1)
    info["context_mb_after_cublas"] = context_mb()
    say(f"bf16 matmul: {peak:.1f} TFLOP/s; CUDA context {info.get('context_mb_at_init')} MB at init, "
        f"{info['context_mb_after_cublas']} MB after cuBLAS")

    # detect() and a plan on the real card (NVML path), as the TUI and the CLI would show them.
    try:
        from llmcustoms.core.planner import make_plan

        detector = HardwareDetector(env_config={"MAX_VRAM_GB": None, "FORCE_CPU": False, "DEFAULT_PRESET": "quality"})
        info["detect"] = detector.detect()
        plan = make_plan("tinyllama", "quality", hardware=info["detect"],
                         env_config={"MAX_VRAM_GB": None, "FORCE_CPU": False, "DEFAULT_PRESET": "quality"})
        info["plan"] = {"reason": plan.reason, "tokens_per_s": plan.tokens_per_s, "fits": plan.fits,
                        "estimate_mb": plan.estimate_mb, "free_mb": plan.free_mb, "warnings": plan.warnings}
        say(f"detect(): {json.dumps(info['detect'])}")
        say(f"plan: {json.dumps(info['plan'])}")
    except Exception as error:
        info["detect_error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()

    rows: list[dict[str, Any]] = []
    folders: dict[str, tuple[Path, Any]] = {"tinyllama": build_model_dir("tinyllama", args.quick, work)}
    if "estimate" not in skip:
        estimate_matrix(folders["tinyllama"][0], folders["tinyllama"][1], args, rows, peak)
    if "cards" not in skip:
        for budget in sorted({b for b, m, _ in args.card_cases if m == "suggested"}):
            name = HardwareDetector(env_config={"MAX_VRAM_GB": budget, "FORCE_CPU": False}).suggest_model(
                int(budget * 1024))
            if name not in folders and not args.quick:
                folders[name] = build_model_dir(name, args.quick, work)
        small_cards(folders, args, rows)
    if "plain" not in skip:
        plain_trainer(folders["tinyllama"][0], folders["tinyllama"][1], args, rows, peak)
    info["context_mb_at_end"] = context_mb()
    info["seconds"] = round(time.time() - START, 1)

    text = table(rows, gpu)
    print("\n" + text + "\n", flush=True)
    say(f"context at end {info['context_mb_at_end']} MB; done in {info['seconds']}s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
        (out / "gpu_table.md").write_text(f"{info['date']}, {gpu}\n\n{text}\n")
        (out / "gpu_log.txt").write_text("\n".join(LOG) + "\n")
    failures = [r for r in rows if r["part"] == "card" and not r.get("trained")]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
