"""K-quant GGUF files (q4_k_m, q5_k_m, q6_k): llama.cpp's own quantizer, from llama-cpp-python when installed.

The ``gguf`` package cannot write K-quants for every tensor shape, so they are made the way llama.cpp makes
them: an f16 GGUF first (``gguf_writer``), then ``llama_model_quantize`` on it. Without llama-cpp-python the
export is refused with one sentence before anything is loaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmcustoms.errors import InputError, LLMCustomsError

#: llama.cpp's file type constant (a name in the llama_cpp module) for each K-quant.
FTYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
          "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}


def llama_cpp_available() -> bool:
    """True when llama-cpp-python (the ``llama_cpp`` module) can be imported here."""
    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp(quant: str, plain: tuple[str, ...]) -> None:
    """InputError (one sentence) unless llama.cpp's quantizer is installed for the K-quant ``quant``."""
    if not llama_cpp_available():
        raise InputError(f"--quant {quant} is a K-quant, which only llama.cpp's quantizer writes: install it "
                         f"(pip install llama-cpp-python) or choose {', '.join(plain)}.")


def quantize_with_llama_cpp(f16_path: Path, out_path: Path, quant: str) -> None:
    """Quantize the f16 GGUF at ``f16_path`` to ``out_path`` as ``quant`` with llama.cpp's quantizer."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[quant])
    status = llama_cpp.llama_model_quantize(str(f16_path).encode(), str(out_path).encode(), ctypes.byref(params))
    if status != 0 or not out_path.is_file():
        raise LLMCustomsError(f"llama.cpp's quantizer could not write the {quant} GGUF (status {status}); "
                              "nothing was written.")
