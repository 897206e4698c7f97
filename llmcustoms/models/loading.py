"""Loading a base model for LoRA training at the precision the plan chose.

CPU: fp32 weights at load; where bf16 autocast is chosen, the frozen base Linear weights are then
stored in bf16 once LoRA is added (``cpu_bf16.prepare_cpu_training``; LoRA weights stay fp32).
CUDA: bf16 (fp16 where bf16 is unsupported) LoRA, or 4-bit NF4 QLoRA through bitsandbytes.
"""

from __future__ import annotations

from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.utils.logger import get_logger

log = get_logger("llmcustoms.training")

LORA_TARGETS = "all-linear"


def load_tokenizer(model_path: str):
    """The model's tokenizer with a pad token (the end-of-text token when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        # A base model without a chat template gets a plain ChatML one so examples render the same way.
        tokenizer.chat_template = (
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        )
    return tokenizer


def _torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "4bit": torch.bfloat16}[precision]


def load_base_model(model_path: str, train_config: dict[str, Any]):
    """The base model on the plan's device and precision (no LoRA yet)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = train_config.get("device", "cpu")
    precision = train_config.get("precision", "fp32")
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(precision)}
    if precision == "4bit":
        if device != "cuda":
            raise LLMCustomsError("4-bit training needs a CUDA GPU; on the CPU use fp32.")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise LLMCustomsError(
                "4-bit training needs bitsandbytes: pip install 'llmcustoms[gpu]' (or choose a smaller model)."
            ) from None
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["dtype"] = compute
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    # transformers' SDPA: over packed rows (position ids restarting per example, no attention mask) it builds the
    # block-diagonal causal mask itself. On the CPU it measured faster than our former per-example attention
    # once the frozen weights were bf16 (2026-12-02, bench_train ours vs ours_masked: 290 → 303 real tok/s at
    # rows of 512, 322 → 351 at 256), so that attention was deleted (issue 13).
    kwargs["attn_implementation"] = train_config.get("attn_implementation", "sdpa")
    if device == "cuda":
        # Straight onto the GPU: no full copy of the weights in RAM first (small boxes, big models).
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    model.config.use_cache = False  # packed rows are isolated only without a cache (DESIGN.md)
    return model


def add_lora(model, train_config: dict[str, Any]):
    """``model`` wrapped with a LoRA adapter on every linear projection (rank/alpha from the preset)."""
    from peft import LoraConfig, get_peft_model

    # 4-bit: deliberately not peft's prepare_model_for_kbit_training, which upcasts every non-quantized
    # weight to fp32: embeddings and lm_head would double (+262 MB for TinyLlama, +470 MB for Qwen2.5's
    # vocabulary) for no gain, since Llama-style RMSNorm already computes in fp32. All the base weights
    # are frozen by get_peft_model; only the checkpointing part of that helper is needed.
    for param in model.parameters():
        param.requires_grad_(False)
    if train_config.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=int(train_config["lora_rank"]), lora_alpha=int(train_config["lora_alpha"]),
        lora_dropout=float(train_config.get("lora_dropout", 0.05)), target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if train_config.get("device", "cpu") == "cpu":
        from llmcustoms.models.cpu_bf16 import prepare_cpu_training

        # Frozen base weights in bf16 (LoRA weights and optimizer state fp32) when bf16 autocast was chosen,
        # and cheaper dropout masks: see cpu_bf16.py for what each buys.
        prepare_cpu_training(model, bf16=cpu_bf16_training(train_config))
    return model


def cpu_bf16_training(train_config: dict[str, Any]) -> bool:
    """True when a CPU run trains under bf16 autocast.

    ``train_config`` is settled by the caller (``hardware.cpu.settle_cpu_training``: the plan asked for
    bf16 and the CPU passed the probe), the same decision ``arguments.training_arguments`` makes for
    ``TrainingArguments(bf16=...)``.
    """
    return train_config.get("device", "cpu") == "cpu" and bool(train_config.get("bf16_autocast"))


def load_for_training(model_path: str, train_config: dict[str, Any]):
    """(peft model, tokenizer) ready for training under ``train_config``."""
    tokenizer = load_tokenizer(model_path)
    model = load_base_model(model_path, train_config)
    model = add_lora(model, train_config)
    return model, tokenizer
