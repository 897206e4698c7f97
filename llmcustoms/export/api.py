"""``export_run``: one call from a finished run to an adapter copy, a merged model or a verified GGUF.

Order of work: resolve and check the run (refusals come before anything heavy), check the target
(never overwritten without ``force``) and the free disk space, then write into a staging folder
that is renamed into place only after the export verified.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcustoms.errors import InputError
from llmcustoms.export.adapter import export_adapter
from llmcustoms.export.gguf_kquant import require_llama_cpp
from llmcustoms.export.merge import export_merged
from llmcustoms.export.model_card import CardTarget, write_model_card
from llmcustoms.export.source import ExportSource, attach_base_model, estimate_bytes, open_run
from llmcustoms.export.staging import StagedFolder, clean_stale_staging, refuse_existing
from llmcustoms.utils.validators import check_disk_space

FORMATS = ("adapter", "merged", "gguf")
QUANTS = ("f16", "q8_0", "q4_1", "q4_0")  # written by the gguf package's own quantizers
#: K-quants: only llama.cpp's quantizer writes them (the llama-cpp-python package, when installed).
K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")


@dataclass
class ExportResult:
    """What an export produced.

    ``path`` is the export folder for ``adapter`` and ``merged``, and the ``.gguf`` file for ``gguf``
    (its folder, holding the Modelfile too, is ``folder``). ``verification`` is the sentence to show;
    ``metrics`` holds its numbers (``rel_error``, ``argmax_agreement``, …).
    """

    path: Path
    format: str
    verification: str
    ollama_command: str | None = None
    folder: Path | None = None
    quant: str | None = None
    modelfile: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def default_target(source: ExportSource, fmt: str, quant: str) -> Path:
    """``<run>/export/<fmt>`` (``gguf-<quant>`` for GGUF)."""
    return source.run.path / "export" / (f"gguf-{quant}" if fmt == "gguf" else fmt)


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """No tqdm bars from transformers while exporting (the CLI and the TUI show ``progress`` lines)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils: Any = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        import transformers.modeling_gguf_pytorch_utils as loaded

        gguf_utils = loaded
    original = getattr(gguf_utils, "tqdm", None)
    if original is not None:
        gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original
        if was_enabled:
            hf_logging.enable_progress_bar()


def _check_arguments(fmt: str, quant: str, out: str | os.PathLike[str] | None) -> None:
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if quant in K_QUANTS:
        require_llama_cpp(quant, QUANTS)
    elif quant not in QUANTS:
        raise InputError(f"Unknown GGUF quantization {quant!r}: use one of {', '.join(QUANTS + K_QUANTS)}.")
    if out is not None and str(out).endswith(".gguf"):
        raise InputError(
            f"--out names a folder for the export ({out} looks like a file); the GGUF is written inside it "
            f"as model-{quant}.gguf next to its Modelfile."
        )


def _check_target_is_safe(target: Path, source: ExportSource) -> None:
    """InputError when writing ``target`` would replace, contain or sit inside what the export reads.

    Inside the run directory only ``<run>/export/...`` is allowed (never run.json, checkpoints, …).
    """
    run_path = source.run.path.absolute()
    exports = run_path / "export"
    read_only = [p.absolute() for p in (source.adapter_dir, source.model_path) if p is not None]
    clashes = [p for p in read_only if target.is_relative_to(p) or p.is_relative_to(target)]
    if run_path.is_relative_to(target) or (target.is_relative_to(run_path) and not target.is_relative_to(exports)):
        clashes.append(run_path)
    if clashes:
        raise InputError(
            f"{target} would replace or sit inside {clashes[0]}, which the export reads; choose another --out "
            f"(inside the run, only under {exports})."
        )


def export_run(run_ref: str | os.PathLike[str], fmt: str = "adapter", out: str | os.PathLike[str] | None = None,
               quant: str = "f16", force: bool = False, progress: Callable[[str], None] | None = None,
               runs_root: str | os.PathLike[str] | None = None) -> ExportResult:
    """Export a finished run as ``adapter``, ``merged`` or ``gguf`` (``quant`` f16 or q8_0).

    ``run_ref`` is a run directory or id (looked up in ``runs_root``, default the runs folder).
    ``out`` is the export folder (default ``<run>/export/<fmt>[-<quant>]``); an existing one is
    refused unless ``force``, and even then unless it is an export this tool wrote (it carries the
    marker ``.llmcustoms-export.json`` that every export gets). ``progress(message)`` receives progress lines. Raises an
    ``LLMCustomsError`` subclass with one sentence for every refusal and for a failed verification.
    """
    say = progress or (lambda message: None)
    started = time.time()
    _check_arguments(fmt, quant, out)
    source = open_run(run_ref, runs_root)
    if fmt != "adapter":
        attach_base_model(source, require_architecture=fmt == "gguf")
    target = Path(out).expanduser() if out is not None else default_target(source, fmt, quant)
    target = target.absolute()
    _check_target_is_safe(target, source)
    refuse_existing(target, force)
    for stale, size in clean_stale_staging(target):
        say(f"Removed {stale.name}, an unfinished export left by a process that was killed "
            f"({size / 2**20:.0f} MB freed).")
    needed = estimate_bytes(source, fmt, quant)
    check_disk_space(target.parent, needed, f"the {fmt} export")
    say(f"Exporting run {source.run_id} as {fmt}{f' ({quant})' if fmt == 'gguf' else ''} to {target}…")

    quiet = _quiet_progress_bars() if fmt != "adapter" else nullcontext()
    manifest = {"format": fmt, "quant": quant if fmt == "gguf" else None, "run_id": source.run_id,
                "run_dir": str(source.run.path), "model": source.model_name}
    with quiet, StagedFolder(target, force=force, manifest=manifest) as stage:
        if fmt == "adapter":
            info = export_adapter(source, stage.path)
            write_model_card(source, stage.path, CardTarget("adapter", target))
            stage.commit()
            verification = (f"adapter copied: {info['files']} files, {info['bytes'] / 1e6:.1f} MB, "
                            "checksums identical")
            return ExportResult(path=target, format=fmt, verification=verification, folder=target,
                                metrics=info, seconds=time.time() - started)

        if fmt == "merged":
            info = export_merged(source, stage.path, say)
            write_model_card(source, stage.path, CardTarget("merged", target))
            stage.commit()
            comparison = info["comparison"]
            verification = f"merged model ({info['dtype']}) vs base + adapter: {comparison.describe()}"
            say(f"Verified: {verification}")
            return ExportResult(path=target, format=fmt, verification=verification, folder=target,
                                metrics={**comparison.as_dict(), "dtype": info["dtype"]},
                                seconds=time.time() - started)

        from llmcustoms.export.gguf_export import export_gguf

        info = export_gguf(source, stage.path, quant, say)
        gguf_final = stage.final(info["gguf_path"])
        modelfile_final = stage.final(info["modelfile"])
        command = f"ollama create {info['ollama_name']} -f {shlex.quote(str(modelfile_final))}"
        write_model_card(source, stage.path, CardTarget("gguf", target, quant, gguf_final.name, command))
        stage.commit()
        comparison = info["comparison"]
        verification = (f"GGUF {quant} read back vs merged model: {comparison.describe()}; {info['tokenizer']}; "
                        f"Modelfile template {info['template']}")
        say(f"Verified: {verification}")
        return ExportResult(path=gguf_final, format=fmt, verification=verification, ollama_command=command,
                            folder=target, quant=quant, modelfile=modelfile_final,
                            metrics={**comparison.as_dict(), "tensors": info["written"]["tensors"],
                                     "bytes": info["written"]["bytes"]},
                            seconds=time.time() - started)
