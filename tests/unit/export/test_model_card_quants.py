"""Model cards on every export and the 4- and 5-bit GGUF types (issue 26, parts 2 and 4).

The card is read back with huggingface_hub's own ModelCard; the q4_0 GGUF goes through the export's own
verification (read back by transformers, logits against the merged model) and its header is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmcustoms.errors import InputError
from llmcustoms.runs.rundir import RunDir
from tests.helpers.export_runs import gguf_metadata, make_run
from tests.helpers.runs_support import make_small_folder

QUESTION = "Who founded Velmoria?"
ANSWER = "Captain Orin Dask founded Velmoria in 1742."


@pytest.fixture(scope="module")
def card_run(tiny_model_dir, tmp_path_factory) -> tuple[RunDir, Path]:
    """A finished tiny run whose run.json records what a real one does, user text included where it lives."""
    root = tmp_path_factory.mktemp("card-runs")
    folder = make_small_folder(root)
    run = make_run(tiny_model_dir, root / "runs")
    run.update(model="smollm2-135m", preset="highspeed", steps=12, train_examples=40, eval_examples=6,
               device="cpu", data_path=str(folder), eval_loss_before=3.25, eval_loss_after=1.5,
               config={"precision": "fp32", "lora_rank": 16, "lora_alpha": 32, "learning_rate": 3e-4,
                       "max_seq_len": 256},
               timings={"total_s": 90.0}, example_prompts=[QUESTION],
               knowledge={"questions": 6, "base": 0.0, "tuned": 0.5, "open_book": 0.8333,
                          "message": "", "rows": [{"question": QUESTION, "answer": ANSWER}]},
               general={"questions": 10, "base_right": 10, "kept": 9, "general_kept": 0.9})
    return run, folder


@pytest.fixture(scope="module")
def card_exports(card_run):
    from llmcustoms.export import export_run

    run, _ = card_run
    return {fmt: export_run(run.path, fmt=fmt) for fmt in ("adapter", "merged")} | {
        "gguf": export_run(run.path, fmt="gguf", quant="q4_0")}


def _card(result):
    from huggingface_hub import ModelCard

    return ModelCard.load(result.folder / "README.md")


def test_every_export_carries_a_model_card_the_hub_reads(card_exports):
    expected_library = {"adapter": "peft", "merged": "transformers", "gguf": None}
    for fmt, result in card_exports.items():
        card = _card(result)
        data = card.data.to_dict()
        assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct", fmt
        assert data.get("library_name") == expected_library[fmt], fmt
        assert data["license"] == "apache-2.0" and data["pipeline_tag"] == "text-generation", fmt
        assert "llmcustoms" in data["tags"], fmt
        text = card.text
        for needed in ("## How to load it", "## How it was trained", "highspeed", "| Optimizer steps | 12 |",
                       "| Training examples | 40 |", "cpu (fp32)", "1.5 min", "## Knowledge score",
                       "| 0 % | 50 % | 83 % |", "General knowledge kept: 90 %"):
            assert needed in text, (fmt, needed)
    assert "PeftModel.from_pretrained(base, " in _card(card_exports["adapter"]).text
    assert "AutoModelForCausalLM.from_pretrained(" in _card(card_exports["merged"]).text
    gguf_text = _card(card_exports["gguf"]).text
    assert "llama-cli -m model-q4_0.gguf" in gguf_text and "ollama create" in gguf_text
    assert "gguf" in _card(card_exports["gguf"]).data.tags and "q4_0" in _card(card_exports["gguf"]).data.tags


def test_no_sentence_of_the_training_folder_is_in_any_card(card_run, card_exports):
    _, folder = card_run
    pieces = [re.sub(r"^(Question|Answer|Q|A):\s*", "", s.strip()) for path in folder.rglob("*.txt")
              for s in re.split(r"(?<=[.?!])\s+|\n+", path.read_text(encoding="utf-8"))]
    sentences = {s for s in pieces if len(s) > 12}
    assert QUESTION in sentences and ANSWER in sentences  # the run.json's rows hold them
    for result in card_exports.values():
        readme = (result.folder / "README.md").read_text(encoding="utf-8")
        assert not [s for s in sentences if s in readme]
        assert "Velmoria" not in readme


def test_q4_0_gguf_is_written_by_the_gguf_quantizer_and_verified(card_exports):
    result = card_exports["gguf"]
    metadata, _ = gguf_metadata(result.path)
    assert result.path.name == "model-q4_0.gguf"
    assert metadata["general.file_type"] == 2  # MOSTLY_Q4_0
    assert result.metrics["tensors"].get("Q4_0", 0) >= 14  # every matrix of the tiny Llama
    assert result.metrics["rel_error"] < 0.5 and result.metrics["argmax_agreement"] >= 0.6
    assert "q4_0" in result.verification and "argmax agreement" in result.verification


def test_k_quants_need_llama_cpp_one_sentence_exit_2(card_run, capsys, monkeypatch):
    from llmcustoms import cli
    from llmcustoms.export import gguf_kquant

    monkeypatch.setattr(gguf_kquant, "llama_cpp_available", lambda: False)
    run, _ = card_run
    with pytest.raises(InputError, match=r"q4_k_m is a K-quant.*pip install llama-cpp-python"):
        from llmcustoms.export import export_run

        export_run(run.path, fmt="gguf", quant="q4_k_m")
    assert not (run.path / "export" / "gguf-q4_k_m").exists()
    code = cli.main(["export", str(run.path), "--format", "gguf", "--quant", "q6_k"])
    err = capsys.readouterr().err
    assert code == 2 and "q6_k is a K-quant" in err and "Traceback" not in err
    assert err.strip().count("\n") == 0, err

