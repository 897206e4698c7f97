"""Packing: rows are planned within the limit, and packed examples never see each other."""

from __future__ import annotations

import pytest
import torch

from llmcustoms.data.packing import IGNORE, PackedCollator, pack_examples, plan_rows
from tests.helpers.tiny_llama import random_example, tiny_llama


def test_plan_rows_places_every_example_once_within_the_limit():
    lengths = [40, 300, 120, 90, 512, 7, 250, 60]
    rows = plan_rows(lengths, 512)
    placed = sorted(i for row in rows for i in row)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 512 for row in rows)
    assert len(rows) < len(lengths)  # some packing really happened


def test_pack_examples_restarts_positions_and_masks_first_token():
    features = [random_example(10, 1), random_example(6, 2)]
    rows = pack_examples(features, 32)
    assert len(rows) == 1
    row = rows[0]
    assert row["position_ids"] == list(range(10)) + list(range(6))
    assert row["labels"][10] == IGNORE  # B's first token is not predicted from A's last
    assert len(row["input_ids"]) == 16


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_example_logits_equal_its_logits_alone(attn):
    model = tiny_llama(attn)
    a, b = random_example(23, 3), random_example(17, 4)
    row = pack_examples([a, b], 64)[0]
    with torch.no_grad():
        packed = model(input_ids=torch.tensor([row["input_ids"]]),
                       position_ids=torch.tensor([row["position_ids"]]), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b["input_ids"]]), use_cache=False).logits[0]
        alone_a = model(input_ids=torch.tensor([a["input_ids"]]), use_cache=False).logits[0]
    # which example came first depends on the packing order (longest first)
    assert torch.allclose(packed[:23], alone_a, atol=1e-5)
    assert torch.allclose(packed[23:], alone_b, atol=1e-5)


def test_an_all_ones_mask_breaks_isolation_which_is_why_none_is_passed():
    model = tiny_llama()
    a, b = random_example(23, 3), random_example(17, 4)
    row = pack_examples([a, b], 64)[0]
    ids = torch.tensor([row["input_ids"]])
    with torch.no_grad():
        leaky = model(input_ids=ids, position_ids=torch.tensor([row["position_ids"]]),
                      attention_mask=torch.ones_like(ids), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b["input_ids"]]), use_cache=False).logits[0]
    assert (leaky[23:] - alone_b).abs().max() > 1e-3


def test_per_example_losses_are_the_same_packed_and_unpacked():
    model = tiny_llama()
    features = [random_example(n, s) for s, n in enumerate([30, 12, 45, 9, 20])]
    collator = PackedCollator(pad_token_id=0)
    rows = pack_examples(features, 64)
    batch = collator(rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    packed_total = loss_fn(logits[:, :-1].reshape(-1, 300), batch["labels"][:, 1:].reshape(-1))
    unpacked_total = torch.tensor(0.0)
    for f in features:
        labels = torch.tensor([f["labels"]])
        labels[0, 0] = IGNORE
        with torch.no_grad():
            lg = model(input_ids=torch.tensor([f["input_ids"]]), use_cache=False).logits
        unpacked_total += loss_fn(lg[:, :-1].reshape(-1, 300), labels[:, 1:].reshape(-1))
    assert torch.allclose(packed_total, unpacked_total, rtol=1e-5)
    assert collator.tokens_seen == sum(len(f["input_ids"]) for f in features)


def test_collator_counts_tokens_when_the_model_trains_on_them_not_when_fetched():
    model = tiny_llama()
    collator = PackedCollator(pad_token_id=0)
    collator.attach(model)
    first = collator(pack_examples([random_example(10, 1), random_example(6, 2)], 32))
    second = collator(pack_examples([random_example(9, 3)], 32))  # fetched ahead, as data loaders do
    assert collator.tokens_seen == 25 and collator.tokens_trained == 0
    model.train()
    model(input_ids=first["input_ids"], position_ids=first["position_ids"])
    assert collator.tokens_trained == 16
    model.eval()
    with torch.no_grad():
        model(input_ids=second["input_ids"], position_ids=second["position_ids"])
    assert collator.tokens_trained == 16  # evaluation passes do not count as training throughput
