"""The answer-only loss equals the model's own loss, in value and in gradient, and the Trainer uses it."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model

from llmcustoms.data.packing import PackedCollator, pack_examples
from llmcustoms.training.answer_loss import answer_only_loss, supports_answer_only_logits
from tests.helpers.tiny_llama import random_example, tiny_llama


def _lora_model():
    model = tiny_llama()
    model.train()
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))


def _batch():
    # Two packed rows of different widths, so the second is padded and its labels differ per row.
    features = [random_example(n, s) for s, n in enumerate([60, 41, 33, 25, 14, 9])]
    rows = pack_examples(features, 64)
    assert len(rows) >= 2
    return PackedCollator(pad_token_id=0)(rows[:2])


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_same_loss_and_gradients_as_the_model_computes():
    model = _lora_model()
    batch = _batch()
    assert supports_answer_only_logits(model)
    for num_items in (None, torch.tensor(37)):
        extra = {} if num_items is None else {"num_items_in_batch": num_items}
        model.zero_grad()
        reference = model(**batch, use_cache=False, **extra).loss
        reference.backward()
        expected = _grads(model)
        model.zero_grad()
        ours = answer_only_loss(model, batch, num_items)
        ours.backward()
        assert torch.allclose(ours, reference, rtol=1e-6, atol=1e-7), (float(ours), float(reference))
        for name, grad in _grads(model).items():
            assert torch.allclose(grad, expected[name], rtol=1e-4, atol=1e-7), name


def test_only_learnt_positions_reach_the_vocabulary_projection(monkeypatch):
    # On the CPU the fused loss projects exactly the learnt (row, position) pairs; the model's own
    # lm_head is asked for one position per row only.
    from llmcustoms.training import answer_loss

    model = _lora_model()
    batch = _batch()
    widths, projected = [], []
    handle = model.get_base_model().lm_head.register_forward_hook(
        lambda module, args, out: widths.append(args[0].shape[1]))
    fused = answer_loss.fused_linear_cross_entropy
    monkeypatch.setattr(answer_loss, "fused_linear_cross_entropy",
                        lambda hidden, *rest: projected.append(hidden.shape[0]) or fused(hidden, *rest))
    answer_only_loss(model, batch)
    handle.remove()
    learnt = (batch["labels"][:, 1:] != -100).sum().item()
    assert widths == [1] and projected == [learnt]
    assert learnt < (batch["labels"][:, 1:] != -100).any(dim=0).sum().item() * batch["input_ids"].shape[0]


def test_without_the_fused_loss_logits_are_made_where_any_row_learns():
    model = _lora_model()
    model.get_base_model().lm_head.weight.requires_grad_(True)  # a trained output layer: not fusable
    batch = _batch()
    widths = []
    handle = model.get_base_model().lm_head.register_forward_hook(
        lambda module, args, out: widths.append(args[0].shape[1]))
    loss = answer_only_loss(model, batch)
    handle.remove()
    learnt_next = (batch["labels"][:, 1:] != -100).any(dim=0).sum().item()
    assert widths == [learnt_next] and learnt_next < batch["input_ids"].shape[1]
    assert torch.allclose(loss, model(**batch, use_cache=False).loss, rtol=1e-6, atol=1e-7)


def test_fused_cross_entropy_matches_the_plain_one_in_value_and_gradient():
    from llmcustoms.training.answer_loss import fused_linear_cross_entropy

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 64, generator=generator, requires_grad=True)
    weight = torch.randn(1000, 64, generator=generator) * 0.1
    targets = torch.randint(0, 1000, (300,), generator=generator)
    for dtype, tolerance in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        hidden.grad = None
        ours = fused_linear_cross_entropy(hidden, weight, targets, dtype, chunk=128)  # 3 chunks, the last short
        ours.backward()
        mine = hidden.grad.clone()
        hidden.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            logits = torch.nn.functional.linear(hidden, weight)
        reference = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        reference.backward()
        assert abs(ours.item() - reference.item()) <= tolerance * abs(reference.item())
        assert torch.allclose(mine, hidden.grad, rtol=tolerance, atol=tolerance * float(hidden.grad.abs().max()))


def test_a_batch_with_nothing_to_learn_gives_zero_not_nan():
    model = _lora_model()
    batch = _batch()
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss = answer_only_loss(model, batch)
    loss.backward()
    assert loss.item() == 0.0


def test_run_trainer_uses_it_for_training_and_matches_the_plain_trainer(tmp_path):
    from transformers import Trainer, TrainingArguments

    from llmcustoms.training.run_trainer import RunTrainer

    batch = _batch()
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    model = _lora_model()
    ours = RunTrainer(model=model, args=args)
    plain = Trainer(model=model, args=args)
    assert ours.answer_only
    calls = []
    handle = model.get_base_model().lm_head.register_forward_hook(
        lambda module, args_, out: calls.append(args_[0].shape[1]))
    for num_items in (None, torch.tensor(50)):
        mine = ours.compute_loss(model, dict(batch), num_items_in_batch=num_items)
        theirs = plain.compute_loss(model, dict(batch), num_items_in_batch=num_items)
        assert torch.allclose(mine, theirs, rtol=1e-6, atol=1e-7)
    assert calls[0] < batch["input_ids"].shape[1] and calls[1] == batch["input_ids"].shape[1]
    handle.remove()
    # Evaluation asks for outputs: the full forward, as before.
    loss, outputs = ours.compute_loss(model, dict(batch), return_outputs=True)
    assert outputs.logits.shape[1] == batch["input_ids"].shape[1]
