"""Replay: the base model's own answers to everyday requests, trained beside the folder (issue 22)."""

from __future__ import annotations

import re

import pytest

from llmcustoms.evaluation.general import load_general_questions
from llmcustoms.training.replay import (
    ReplaySource,
    load_entities,
    load_prompts,
    replay_count,
    replay_examples,
    swapped_questions,
    whole_sentences,
)
from llmcustoms.utils.sampling import spread_evenly


def _words(text: str) -> set[str]:
    stop = {"what", "is", "the", "a", "an", "of", "in", "do", "you", "how", "which", "who", "to", "and", "are",
            "does", "why", "called", "many", "for", "on", "it", "your", "me", "i", "my", "can", "with"}
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in stop}


def test_the_replay_requests_are_not_the_general_check_questions():
    # The general check must stay an honest measure of what was kept: no replay request may be one of its
    # questions, or share most of its words with one.
    prompts = load_prompts()
    assert len(prompts) >= 100
    questions = [q.question for q in load_general_questions()]
    for prompt in prompts:
        for question in questions:
            assert prompt.lower() != question.lower()
            asked = _words(question)
            if asked:
                shared = len(_words(prompt) & asked) / len(asked)
                assert shared < 0.6, (prompt, question)


def test_whole_sentences_cuts_an_answer_stopped_mid_sentence():
    assert whole_sentences("The sky is blue. Light scatters in the air and") == "The sky is blue."
    assert whole_sentences("Bees make honey from nectar.") == "Bees make honey from nectar."
    assert whole_sentences("no sentence end at all") == "no sentence end at all"


def test_replay_count_follows_the_share_with_a_floor_and_the_supply():
    assert replay_count(500, 140, 0.15) == 75
    assert replay_count(20, 140, 0.15) == 8
    assert replay_count(5000, 140, 0.15) == 140
    assert replay_count(500, 140, 0.0) == 0
    assert replay_count(0, 140, 0.15) == 0


def test_spread_picks_evenly_and_replay_examples_are_marked_replay():
    items = [f"request {i}" for i in range(10)]
    assert spread_evenly(items, 5) == ["request 0", "request 2", "request 4", "request 6", "request 8"]
    assert spread_evenly(items, 20) == items and spread_evenly(items, None) == items and spread_evenly(items, 0) == []
    examples = replay_examples([("request 2", "answer 2.")])
    assert [(e.prompt, e.answer, e.kind) for e in examples] == [("request 2", "answer 2.", "replay")]


class _CountingModel:
    """Wraps a real model and records the prompts it is asked (the cache must spare a second asking)."""

    def __init__(self, model):
        self.model, self.rows = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, *args, **kwargs):
        self.rows += int(kwargs["input_ids"].shape[0])
        return self.model.generate(*args, **kwargs)


def _tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


PROMPTS = ["Tell me a joke.", "How do I boil an egg?", "What is a fraction?", "Give me a riddle."]


def test_only_the_requests_a_run_needs_are_asked_and_kept_for_the_next_run(tiny_model_dir, tmp_path):
    model, tokenizer = _tiny(tiny_model_dir)
    counting = _CountingModel(model)
    source = ReplaySource(counting, tokenizer, tiny_model_dir, prompts=PROMPTS, root=tmp_path)
    said: list[str] = []
    source.on_message = said.append
    first = source.pairs(2)
    assert counting.rows == 2 and said and "2 questions" in said[0]
    assert {p for p, _ in first} <= {"Tell me a joke.", "What is a fraction?"}
    again = ReplaySource(counting, tokenizer, tiny_model_dir, prompts=PROMPTS, root=tmp_path)
    assert again.pairs(2) == first and counting.rows == 2  # read back, nothing asked
    again.pairs(4)
    assert counting.rows == 4  # only the two new requests
    assert set(again.cached()) == set(PROMPTS)


def test_the_answers_come_from_the_base_model_when_an_adapter_is_trained(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = _tiny(tiny_model_dir)
    plain = ReplaySource(model, tokenizer, tiny_model_dir, prompts=PROMPTS, root=tmp_path / "plain")
    plain.pairs(4)
    tuned = get_peft_model(_tiny(tiny_model_dir)[0], LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a trained adapter: B no longer zero, so its answers differ from the base model's
        for name, parameter in tuned.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.5)
    source = ReplaySource(tuned, tokenizer, tiny_model_dir, prompts=PROMPTS, root=tmp_path / "tuned")
    source.pairs(4)
    assert source.cached() == plain.cached()
    with torch.no_grad():  # and the adapter is on again afterwards: the tuned model answers otherwise
        ids = tokenizer("Tell me a joke.", return_tensors="pt")["input_ids"]
        assert not torch.equal(tuned(input_ids=ids).logits, model(input_ids=ids).logits)


def test_an_unwritable_cache_still_gives_answers_and_touches_nothing(tiny_model_dir, tmp_path):
    model, tokenizer = _tiny(tiny_model_dir)
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    pairs = ReplaySource(model, tokenizer, tiny_model_dir, prompts=PROMPTS, root=blocked).pairs(4)
    assert all(prompt in PROMPTS for prompt, _ in pairs)
    assert blocked.read_text() == "x"  # the file in the way is left as it was


@pytest.mark.parametrize("share", [0.0, 0.15])
def test_prepare_data_trains_replay_beside_the_folder_never_holds_it_out(share, sample_data, tiny_model_dir,
                                                                        tmp_path):
    from transformers import AutoTokenizer

    from llmcustoms.training.prepare import prepare_data
    from llmcustoms.training.request import TrainRequest

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [f"Everyday request number {i}?" for i in range(140)]

    class Answers(ReplaySource):  # the real selection, with written answers instead of a model's
        def _generate(self, asked):
            return [f"An everyday answer to {p}" for p in asked]

    replay = Answers(None, tokenizer, tiny_model_dir, prompts=prompts, root=tmp_path)
    messages: list[str] = []
    data = prepare_data(TrainRequest(data_path=str(sample_data), qa="offline"), tokenizer, 256, messages.append,
                        replay=replay, replay_share=share)
    expected = replay_count(data.train_examples, len(prompts), share)
    assert data.replay_examples == expected
    texts = [tokenizer.decode(row["input_ids"]) for row in data.train_rows]
    trained = sum(text.count("An everyday answer to") for text in texts)
    assert trained == expected
    held_out = sum(tokenizer.decode(row["input_ids"]).count("Everyday request") for row in data.eval_rows)
    assert held_out == 0
    assert any(m.startswith("Replay:") for m in messages) == (expected > 0)


def test_no_well_known_name_put_in_the_folders_questions_is_in_the_general_check():
    # The general check must not be trained on by the back door: none of its questions' or answers' words
    # that name something may come from the replay's names.
    text = " ".join(q.question + " " + " ".join(q.answers) for q in load_general_questions()).lower()
    for entity in load_entities():
        core = entity.lower().removeprefix("the ")
        assert not re.search(rf"\b{re.escape(core)}\b", text), entity


def test_swapped_questions_replace_every_name_of_the_folder_by_well_known_ones():
    questions = ["What is the capital of Velmoria?", "When did Emeric Dallow build the Tide Engine at Gullmouth?",
                 "How many people live there?"]
    swapped = swapped_questions(questions, 5, seed=1, entities=["Portugal", "Marie Curie", "the Louvre", "Chile"])
    assert len(swapped) == 2  # the question without a name is left out
    capital = next(q for q in swapped if q.startswith("What is the capital of "))
    assert capital.removeprefix("What is the capital of ").rstrip("?") in ("Portugal", "Marie Curie", "the Louvre",
                                                                          "Chile")
    built = next(q for q in swapped if q.startswith("When did "))
    # No name of the folder is left: a question half about the folder would train the base model's guess about it.
    for name in ("Emeric Dallow", "Tide Engine", "Gullmouth", "Velmoria"):
        assert name not in built and name not in capital
    assert built.endswith("?") and " build the " in built
    assert swapped_questions(questions, 5, seed=1, entities=["Portugal", "Marie Curie", "the Louvre", "Chile"]) \
        == swapped  # fixed by the seed
    assert len(swapped_questions(questions, 1, seed=1, entities=["Portugal", "Chile", "the Louvre"])) == 1
    # More names than well-known ones: the question is left out rather than half swapped.
    assert swapped_questions(questions[1:2], 5, seed=1, entities=["Portugal"]) == []
