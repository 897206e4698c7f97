"""The GGUF export end to end: merge, write GGUF + Modelfile, read the GGUF back and compare.

Order matters for memory: the merged model's reference logits are taken first, the file is
written, the merged model is freed, and only then is the GGUF loaded back (transformers
de-quantizes it to float32, so two float32 copies would otherwise be alive at once).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmcustoms.export.gguf_kquant import FTYPES, quantize_with_llama_cpp
from llmcustoms.export.gguf_vocab import build_vocab
from llmcustoms.export.gguf_writer import write_gguf
from llmcustoms.export.merge import merged_model
from llmcustoms.export.modelfile import (
    build_modelfile,
    derive_chat_format,
    ollama_model_name,
    sampling_parameters,
)
from llmcustoms.export.source import ExportSource, load_tokenizer
from llmcustoms.export.verify import (
    compare_logits,
    enforce,
    load_gguf_model,
    logits_for,
    verify_gguf_tokenizer,
)

Progress = Callable[[str], None]


def gguf_file_name(quant: str) -> str:
    """The GGUF file's name inside the export folder."""
    return f"model-{quant}.gguf"


def export_gguf(source: ExportSource, folder: Path, quant: str, progress: Progress) -> dict[str, Any]:
    """Write ``model-<quant>.gguf`` and ``Modelfile`` into ``folder`` and verify the GGUF."""
    # Fail fast on a tokenizer the writer cannot express, before loading any weights.
    tokenizer = load_tokenizer(source)
    vocab = build_vocab(tokenizer, int(source.config.get("vocab_size") or len(tokenizer)))
    model, tokenizer, _, ids = merged_model(source, progress, tokenizer, reference=False)
    reference = logits_for(model, ids)  # the merged model is what the GGUF must reproduce
    if len(vocab.tokens) != int(model.config.vocab_size):  # the run resized the embeddings
        vocab = build_vocab(tokenizer, int(model.config.vocab_size))

    gguf_path = folder / gguf_file_name(quant)
    progress(f"Writing {gguf_path.name} ({quant}, llama.cpp tensor layout, tokenizer {vocab.pre!r})…")
    k_quant = quant in FTYPES  # llama.cpp's quantizer, from an f16 file written first (gguf_kquant.py)
    first = folder / ".model-f16-for-quantizer.gguf" if k_quant else gguf_path
    written = write_gguf(first, model, vocab, "f16" if k_quant else quant,
                         name=f"{source.model_name} (LLMCustoms run {source.run_id})",
                         description=f"Fine-tuned with LLMCustoms: base {source.model_name}, run {source.run_id}.",
                         progress=progress)
    if k_quant:
        progress(f"Quantizing to {quant} with llama.cpp's quantizer…")
        try:
            quantize_with_llama_cpp(first, gguf_path, quant)
        finally:
            first.unlink(missing_ok=True)
        written = {**written, "tensors": {quant.upper(): written["tensors"].get("F16", 0)},
                   "bytes": gguf_path.stat().st_size}

    chat_format = derive_chat_format(tokenizer)
    parameters = sampling_parameters(getattr(model, "generation_config", None), written["hparams"]["context_length"])
    modelfile = folder / "Modelfile"
    modelfile.write_text(
        build_modelfile(gguf_path.name, chat_format, tokenizer, parameters,
                        title=f"{source.model_name} fine-tuned by LLMCustoms (run {source.run_id})",
                        add_bos=vocab.add_bos),
        encoding="utf-8",
    )
    del model
    gc.collect()

    progress(f"Verifying: reading {gguf_path.name} back with transformers and comparing logits…")
    reloaded = load_gguf_model(gguf_path)
    comparison = compare_logits(reference, logits_for(reloaded, ids))
    del reloaded
    gc.collect()
    enforce(comparison, f"gguf-{quant}", f"the {quant} GGUF")
    tokenizer_note = verify_gguf_tokenizer(tokenizer, gguf_path, vocab.source_fingerprint, vocab.pre)
    return {
        "comparison": comparison,
        "tokenizer": tokenizer_note,
        "gguf_path": gguf_path,
        "modelfile": modelfile,
        "template": "from the chat template" if chat_format is not None else "none (Ollama reads the GGUF's)",
        "ollama_name": ollama_model_name(source.run_id),
        "written": written,
    }
