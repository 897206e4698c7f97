"""Taking a trained model home: adapter copy, merged weights, GGUF + Ollama Modelfile.

``export_run(run, fmt='adapter'|'merged'|'gguf', out=None, quant='f16'|'q8_0'|'q4_1'|'q4_0' (K-quants with llama.cpp), force=False,
progress=None) -> ExportResult``. Every export is written to a staging folder and renamed into
place only after it verified: the adapter by checksums, the merged model by reloading it and
comparing logits with base + adapter, the GGUF by reading it back with transformers and comparing
logits (relative error, argmax agreement) and token ids with the merged model. Modules:
``source`` (run checks), ``staging`` (atomic output), ``adapter``, ``merge``, ``gguf_vocab``,
``gguf_writer``, ``modelfile``, ``gguf_export``, ``verify``, ``api``, and ``publish`` (upload a
verified export to the Hugging Face Hub).

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportResult", "export_run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmcustoms.export import api

        return getattr(api, name)
    raise AttributeError(name)
