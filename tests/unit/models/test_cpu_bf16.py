"""CPU bf16 training: frozen base weights in bf16 only when bf16 autocast is chosen, LoRA fp32, same losses."""

from __future__ import annotations

import pytest
import torch

from llmcustoms.data.packing import PackedCollator, pack_examples
from llmcustoms.hardware import cpu
from llmcustoms.hardware.cpu import settle_cpu_training
from llmcustoms.models.cpu_bf16 import FastDropout
from llmcustoms.models.loading import load_for_training


def _config(bf16: bool) -> dict:
    return {"device": "cpu", "precision": "fp32", "lora_rank": 4, "lora_alpha": 8, "lora_dropout": 0.05,
            "bf16_autocast": bf16, "gradient_checkpointing": False}


def _load(tiny_model_dir, monkeypatch, bf16: bool, probe_ok: bool = True):
    monkeypatch.setattr(cpu, "cpu_bf16_autocast_ok", lambda: probe_ok)
    torch.manual_seed(0)
    model, tokenizer = load_for_training(str(tiny_model_dir), settle_cpu_training(_config(bf16)))
    return model, tokenizer


def _lora_layers(model):
    return [m for m in model.modules() if hasattr(m, "base_layer") and hasattr(m, "lora_A")]


def _dtypes(model):
    layers = _lora_layers(model)
    assert layers, "no LoRA layers found"
    base = {layer.base_layer.weight.dtype for layer in layers}
    lora = {p.dtype for layer in layers for p in (*layer.lora_A.parameters(), *layer.lora_B.parameters())}
    return base, lora


def test_bf16_chosen_means_bf16_frozen_base_and_fp32_lora(tiny_model_dir, monkeypatch):
    model, _ = _load(tiny_model_dir, monkeypatch, bf16=True)
    base, lora = _dtypes(model)
    assert base == {torch.bfloat16} and lora == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert not any(layer.base_layer.weight.requires_grad for layer in _lora_layers(model))
    # Embeddings (tied to the output layer) and norms stay fp32: the residual stream keeps its precision.
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert all(isinstance(d, FastDropout) for layer in _lora_layers(model) for d in layer.lora_dropout.values())


@pytest.mark.parametrize(("plan_bf16", "probe_ok"), [(False, True), (True, False)])
def test_no_bf16_means_fp32_everywhere(tiny_model_dir, monkeypatch, plan_bf16, probe_ok):
    model, _ = _load(tiny_model_dir, monkeypatch, bf16=plan_bf16, probe_ok=probe_ok)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def _features(n: int = 6):
    generator = torch.Generator().manual_seed(3)
    out = []
    for i, length in enumerate([37, 22, 51, 14, 29, 44][:n]):
        ids = torch.randint(5, 1000, (length,), generator=generator).tolist()
        cut = length // 2 - i % 3
        out.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    return out


def _per_example_losses(model, features, bf16: bool) -> list[float]:
    rows = pack_examples(features, 128)
    batch = PackedCollator(pad_token_id=0)(rows)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    losses = {}
    for r, row in enumerate(rows):
        starts = [p for p, pos in enumerate(row["position_ids"]) if pos == 0] + [len(row["input_ids"])]
        for s, e in zip(starts[:-1], starts[1:], strict=True):
            i = next(i for i, f in enumerate(features) if i not in losses and f["input_ids"] == row["input_ids"][s:e])
            labels = torch.tensor(features[i]["labels"])
            token = torch.nn.functional.cross_entropy(logits[r, s:e - 1].float(), labels[1:], ignore_index=-100,
                                                      reduction="none")
            losses[i] = float(token[labels[1:] != -100].mean())
    return [losses[i] for i in range(len(features))]


def test_packed_bf16_losses_match_the_fp32_reference(tiny_model_dir, monkeypatch):
    features = _features()
    reference_model, _ = _load(tiny_model_dir, monkeypatch, bf16=False)
    reference_model.eval()
    reference = _per_example_losses(reference_model, features, bf16=False)
    model, _ = _load(tiny_model_dir, monkeypatch, bf16=True)
    model.eval()
    assert _dtypes(model)[0] == {torch.bfloat16}
    ours = _per_example_losses(model, features, bf16=True)
    for mine, theirs in zip(ours, reference, strict=True):
        assert abs(mine - theirs) <= 0.02 * abs(theirs), (ours, reference)  # bf16 rounding, not a different model


def test_bf16_model_trains_and_saves_an_fp32_adapter_plain_peft_loads(tiny_model_dir, monkeypatch, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from llmcustoms.training.answer_loss import answer_only_loss

    model, _ = _load(tiny_model_dir, monkeypatch, bf16=True)
    model.train()
    batch = PackedCollator(pad_token_id=0)(pack_examples(_features(), 128))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    forward = model.forward

    def autocast_forward(*args, **kwargs):  # as accelerate wraps it under TrainingArguments(bf16=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    model.forward = autocast_forward
    losses = []
    for _ in range(3):
        loss = answer_only_loss(model, batch, compute_dtype=torch.bfloat16)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.forward = forward
    assert all(x == x for x in losses) and losses[-1] < losses[0]
    # Outside autocast (generation for the knowledge score before training) the bf16 base still runs.
    model.eval()
    out = model.generate(input_ids=batch["input_ids"][:1, :8], max_new_tokens=3, do_sample=False)
    assert out.shape[1] == 11
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert saved and {t.dtype for t in saved.values()} == {torch.float32}
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    trained = {n: p for n, p in model.named_parameters() if "lora_" in n}
    for name, param in plain.named_parameters():
        if "lora_" in name:
            assert torch.equal(param, trained[name]), name


def test_fast_dropout_drops_p_scales_the_rest_and_passes_gradients_through_the_mask():
    torch.manual_seed(0)
    dropout = FastDropout(0.05)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.05) < 0.003
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.95))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
    dropout.eval()
    assert dropout(x) is x
    assert torch.equal(FastDropout(0.0).train()(x), x)
