"""The model card every export carries (README.md): Hub metadata, how to load it, how it was trained, its score.

Built and read back with ``huggingface_hub``'s ``ModelCard``/``ModelCardData`` so the Hub renders it as a
model card. It holds numbers and settings from run.json only, never the user's text (no questions, answers
or passages: run.json's ``knowledge.rows`` and ``example_prompts`` are not read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcustoms.errors import LLMCustomsError
from llmcustoms.export.source import ExportSource
from llmcustoms.models.registry import find_spec

#: Licences of the models the registry names (their Hub cards), used when the base folder has no card.
KNOWN_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "apache-2.0",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-0.5B-Instruct": "apache-2.0",
    "Qwen/Qwen2.5-1.5B-Instruct": "apache-2.0",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": "apache-2.0",
    "meta-llama/Llama-3.2-1B-Instruct": "llama3.2",
    "meta-llama/Llama-3.2-3B-Instruct": "llama3.2",
}


@dataclass(frozen=True)
class CardTarget:
    """What the card describes: the format, where it lies, and for GGUF the file, quantization and Ollama line."""

    fmt: str  # 'adapter' | 'merged' | 'gguf'
    folder: Path
    quant: str | None = None
    gguf_name: str | None = None
    ollama_command: str | None = None


def base_hub_id(source: ExportSource) -> str | None:
    """The base model's Hub id when the run names a model the registry knows (a local folder: None)."""
    for name in (source.info.get("model"), source.model_path.name if source.model_path else None):
        spec = find_spec(str(name)) if name else None
        if spec is not None:
            return spec.hub_id
    return None


def base_license(source: ExportSource, hub_id: str | None) -> str | None:
    """The base model's licence: its own card's ``license`` when the folder has one, else the known one."""
    from huggingface_hub import ModelCard

    card_path = source.model_path / "README.md" if source.model_path else None
    if card_path is not None and card_path.is_file():
        try:
            found = ModelCard.load(card_path, ignore_metadata_errors=True).data.to_dict().get("license")
        except Exception:  # noqa: BLE001 - an unreadable card only means the licence is not known from it
            found = None
        if isinstance(found, str) and found:
            return found
    return KNOWN_LICENSES.get(hub_id or "")


def _pct(value: Any) -> str:
    return f"{100 * float(value):.0f} %" if isinstance(value, (int, float)) else "not measured"


def _load_lines(target: CardTarget, base: str) -> str:
    folder = str(target.folder)
    if target.fmt == "adapter":
        return ("With PEFT, on top of its base model:\n\n```python\nfrom peft import PeftModel\n"
                "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f"base = AutoModelForCausalLM.from_pretrained({base!r})\n"
                f"model = PeftModel.from_pretrained(base, {folder!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({folder!r})\n```\n")
    if target.fmt == "merged":
        return ("A standard transformers folder (the adapter is merged into the weights):\n\n```python\n"
                "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f"model = AutoModelForCausalLM.from_pretrained({folder!r})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({folder!r})\n```\n")
    name = target.gguf_name or "model.gguf"
    lines = f"llama.cpp:\n\n```sh\nllama-cli -m {name} -cnv\n```\n"
    if target.ollama_command:
        ollama_name = target.ollama_command.split()[2]
        lines += f"\nOllama (the Modelfile is next to the GGUF):\n\n```sh\n{target.ollama_command}\n" \
                 f"ollama run {ollama_name}\n```\n"
    return lines


def _training_table(info: dict[str, Any]) -> str:
    config = info.get("config") or {}
    timings = info.get("timings") or {}
    seconds = timings.get("total_s")
    rows = [
        ("Preset", info.get("preset") or config.get("preset")),
        ("Optimizer steps", info.get("steps")),
        ("Training examples", info.get("train_examples")),
        ("Held-out examples", info.get("eval_examples")),
        ("Hardware", f"{info.get('device') or config.get('device') or '?'} ({config.get('precision') or '?'})"),
        ("Training time", f"{float(seconds) / 60:.1f} min" if isinstance(seconds, (int, float)) else None),
        ("LoRA rank / alpha", f"{config.get('lora_rank')} / {config.get('lora_alpha')}"
         if config.get("lora_rank") else None),
        ("Learning rate", config.get("learning_rate")),
        ("Tokens per row", config.get("max_seq_len")),
        ("Held-out loss before → after", _loss_pair(info)),
    ]
    body = "| | |\n|---|---|\n" + "".join(f"| {name} | {value} |\n" for name, value in rows if value is not None)
    return body


def _loss_pair(info: dict[str, Any]) -> str | None:
    before, after = info.get("eval_loss_before"), info.get("eval_loss_after")
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return None
    return f"{before:.3f} → {after:.3f}"


def _knowledge(info: dict[str, Any]) -> str:
    knowledge = info.get("knowledge") or {}
    general = info.get("general") or {}
    if knowledge.get("tuned") is None:
        text = "No knowledge score was measured for this run.\n"
    else:
        text = (f"Held-out questions about the training documents ({knowledge.get('questions')}), answered "
                "without the documents:\n\n| base model | tuned | open book (base model given the passage) |\n"
                f"|---|---|---|\n| {_pct(knowledge.get('base'))} | {_pct(knowledge.get('tuned'))} | "
                f"{_pct(knowledge.get('open_book'))} |\n")
    if isinstance(general.get("general_kept"), (int, float)):
        text += (f"\nGeneral knowledge kept: {_pct(general['general_kept'])} of the "
                 f"{general.get('base_right', '?')} common-knowledge questions the base model answered right.\n")
    return text


def build_model_card(source: ExportSource, target: CardTarget) -> str:
    """The card's text: YAML front matter in the Hub's schema, then what it is, how to load, training, score."""
    from huggingface_hub import ModelCard, ModelCardData

    hub_id = base_hub_id(source)
    base_text = hub_id or str(source.info.get("model_path") or source.model_name)
    tags = ["llmcustoms", "lora", "text-generation"]
    tags += {"adapter": ["peft"], "merged": ["transformers"], "gguf": ["gguf", target.quant or "f16"]}[target.fmt]
    data = ModelCardData(
        base_model=hub_id,
        library_name={"adapter": "peft", "merged": "transformers"}.get(target.fmt),
        license=base_license(source, hub_id),
        pipeline_tag="text-generation",
        tags=tags,
    )
    kind = {"adapter": "LoRA adapter", "merged": "model (LoRA merged into the base)",
            "gguf": f"GGUF model ({target.quant or 'f16'})"}[target.fmt]
    body = (
        f"# {source.model_name} fine-tuned with LLMCustoms: {kind}\n\n"
        f"A {kind} of [{base_text}]({'https://huggingface.co/' + hub_id if hub_id else base_text}) fine-tuned "
        f"with LLMCustoms (run `{source.run_id}`) on a private folder of documents, so "
        "that it answers questions about them. The documents and the questions are not part of this card.\n\n"
        f"## How to load it\n\n{_load_lines(target, base_text)}\n"
        f"## How it was trained\n\nLoRA on every linear projection of the base model.\n\n"
        f"{_training_table(source.info)}\n"
        f"## Knowledge score\n\n{_knowledge(source.info)}"
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    return str(card)


def write_model_card(source: ExportSource, folder: Path, target: CardTarget) -> Path:
    """Write README.md (replacing any card copied in) and read it back: its metadata must be what was built."""
    from huggingface_hub import ModelCard

    text = build_model_card(source, target)
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    expected = ModelCard(text).data.to_dict()
    loaded = ModelCard.load(path).data.to_dict()
    if loaded != expected or loaded.get("pipeline_tag") != "text-generation":
        raise LLMCustomsError(f"Verification failed: the model card {path} does not read back as written.")
    return path
