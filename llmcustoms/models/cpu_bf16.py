"""LoRA training on the CPU without the work bf16 autocast repeats at every step.

Under CPU bf16 autocast (``hardware.cpu.choose_cpu_precision``) a step of LoRA training on SmolLM2-135M
spends far less time in matrix products (AMX/AVX512-BF16 make them cheap) than around them
(torch.profiler, 2 cores):

- **Casts.** Autocast re-casts a weight fp32 → bf16 at every op call unless it is a leaf that
  requires grad, so the frozen base weights are cast again at every step; and the residual stream
  is fp32, so each normalised hidden state is cast to bf16 once per projection that reads it (q, k,
  v; gate, up) and once more per LoRA branch (PEFT casts the input to the LoRA weights' fp32, then
  autocast casts it back). ``prepare_cpu_training(bf16=True)`` stores the frozen base Linear
  weights in bf16, casts the two norms' outputs to bf16 once, and lets the LoRA branch take that
  bf16 input as it is. The numbers are the ones autocast computes: its products are bf16 products
  of the same bf16-rounded inputs and weights. LoRA A/B weights, their gradients and the optimizer
  state stay fp32 (autocast casts the A/B weights once per step and caches them).
- **Dropout masks.** ``nn.Dropout`` draws one fp32 Bernoulli sample per element from torch's
  generator: 7 LoRA branches × every layer × every token. ``FastDropout`` draws the same mask
  (each element dropped with probability ``p`` to 1/65,536, kept ones scaled by 1/(1 − p)) from
  16 random bits per element, four per 64-bit draw: ~3× cheaper. Used on the CPU in fp32 too.

Outside autocast (the knowledge score's generation before training starts) the bf16 base layers cast
their input to bf16 themselves and their output back to fp32, so the model still runs, with bf16
products as in training.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

BF16 = torch.bfloat16

#: The norms whose output only feeds Linear projections (attention's q/k/v, the MLP's gate/up), in
#: the Llama family (llama, qwen2, qwen3, mistral).
PROJECTION_NORMS = ("input_layernorm", "post_attention_layernorm")


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a mask drawn from 16 random bits per element (four elements per draw)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.numel() == 0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        count = x.numel()
        # random_ over the full int64 range: every one of the four 16-bit lanes is uniform.
        bits = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, 2 ** 63 - 1)
        lanes = bits.view(torch.int16)[:count].view(x.shape)
        keep = lanes >= -32768 + round(self.p * 65536)  # P(keep) = 1 - p, to 1/65,536
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)


#: Where the pre-hook leaves the input's dtype for the post-hook, on the Linear itself.
_OUT_DTYPE = "_llmcustoms_out_dtype"


def _input_to_weight_dtype(module: nn.Module, args: tuple) -> tuple | None:
    """A bf16 Linear given an fp32 input (no autocast around it) casts the input, as autocast would."""
    weight_dtype = cast(torch.Tensor, module.weight).dtype
    if args and isinstance(args[0], torch.Tensor) and args[0].dtype != weight_dtype \
            and args[0].is_floating_point() and not torch.is_autocast_enabled("cpu"):
        setattr(module, _OUT_DTYPE, args[0].dtype)
        return (args[0].to(weight_dtype), *args[1:])
    setattr(module, _OUT_DTYPE, None)
    return None


def _output_to_input_dtype(module: nn.Module, args: tuple, output):
    """...and gives its output back in the input's dtype, so the model around it sees what an fp32 Linear gives."""
    dtype = getattr(module, _OUT_DTYPE, None)
    if dtype is not None and isinstance(output, torch.Tensor):
        setattr(module, _OUT_DTYPE, None)
        return output.to(dtype)
    return None


def _output_to_bf16_under_autocast(module: nn.Module, args: tuple, output):
    """A norm's fp32 output cast to bf16 once, when autocast would cast it for every projection anyway."""
    if isinstance(output, torch.Tensor) and output.dtype == torch.float32 and torch.is_autocast_enabled("cpu") \
            and torch.get_autocast_dtype("cpu") == BF16:
        return output.to(BF16)
    return None


def _lora_linears(model: nn.Module):
    """PEFT LoRA layers wrapping a plain ``nn.Linear``."""
    for module in model.modules():
        base = getattr(module, "base_layer", None)
        if isinstance(base, nn.Linear) and hasattr(module, "lora_A") and hasattr(module, "lora_dropout"):
            yield module


def prepare_cpu_training(model: nn.Module, bf16: bool) -> dict[str, int]:
    """Make a PEFT LoRA model cheaper to train on the CPU; returns what was changed, by count.

    Always: ``nn.Dropout`` in the LoRA branches becomes ``FastDropout``. With ``bf16`` (only when
    ``hardware.cpu.choose_cpu_precision`` chose bf16 autocast): frozen base Linear weights in bf16, the
    projection norms' outputs cast to bf16 once, PEFT's fp32 cast of the LoRA input switched off.
    """
    done = {"dropouts": 0, "bf16_linears": 0, "bf16_norms": 0}
    for layer in _lora_linears(model):
        for key, dropout in list(layer.lora_dropout.items()):
            if type(dropout) is nn.Dropout and dropout.p > 0.0:
                layer.lora_dropout[key] = FastDropout(dropout.p)
                done["dropouts"] += 1
        if not bf16:
            continue
        base = layer.base_layer
        if base.weight.requires_grad or base.weight.dtype != torch.float32:
            continue  # trained or already reduced: left as it is
        base.weight.data = base.weight.data.to(BF16)
        if base.bias is not None and not base.bias.requires_grad:
            base.bias.data = base.bias.data.to(BF16)
        base.register_forward_pre_hook(_input_to_weight_dtype)
        base.register_forward_hook(_output_to_input_dtype)
        layer.cast_input_dtype_enabled = False  # the LoRA branch takes the bf16 input; autocast runs it in bf16
        done["bf16_linears"] += 1
    if bf16 and done["bf16_linears"]:
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] in PROJECTION_NORMS:
                module.register_forward_hook(_output_to_bf16_under_autocast)
                done["bf16_norms"] += 1
    return done
