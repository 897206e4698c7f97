"""A tiny random Llama built in memory and random tokenized examples for it (packing, loss tests)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmcustoms.data.packing import IGNORE


def tiny_llama(attn: str = "sdpa") -> LlamaForCausalLM:
    """A 2-layer Llama with random weights (seed 0) in eval mode, no cache: milliseconds a step."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         attn_implementation=attn)
    model = LlamaForCausalLM(config).eval()
    model.config.use_cache = False
    return model


def random_example(length: int, seed: int) -> dict[str, list[int]]:
    """A tokenized example of random ids; the second half is the answer (learnt), the first is masked."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 300, (length,), generator=g).tolist()
    labels = [IGNORE] * (length // 2) + ids[length // 2:]
    return {"input_ids": ids, "labels": labels}
