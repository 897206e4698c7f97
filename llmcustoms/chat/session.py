"""A chat with a trained run: the base model plus its adapter, answers streamed token by token.

The same loaded weights answer as the tuned model (adapter on) or the base model (adapter
disabled), so comparing the two costs no second copy of the model.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmcustoms.errors import DamagedRunError, InputError, ModelNotFoundError, RunNotFoundError
from llmcustoms.models.loading import load_tokenizer
from llmcustoms.models.manager import ModelManager
from llmcustoms.runs.rundir import RunDir
from llmcustoms.support.index import SupportIndex
from llmcustoms.support.verdict import Support, find_support
from llmcustoms.utils.config import Settings
from llmcustoms.utils.logger import get_logger

log = get_logger("llmcustoms.chat")


def chat_device(settings: Settings, cuda_available: bool) -> str:
    """The device a chat loads on: the GPU when there is one, unless FORCE_CPU (environment or .env) says not."""
    return "cuda" if cuda_available and not settings.force_cpu else "cpu"


class ChatSession:
    """Load once, then ``stream``/``answer`` prompts with the tuned or the base model.

    ``run_or_model`` is a run directory (or id) with an adapter, or a plain model folder / name.
    """

    def __init__(self, run_or_model: str | os.PathLike[str], base_model_path: str | None = None,
                 system_prompt: str | None = None, runs_root: str | os.PathLike[str] | None = None,
                 settings: Settings | None = None) -> None:
        """``settings``: the ones the entry point read (CLI, TUI, ``FineTuner``): ``force_cpu`` picks the
        device. None reads them here, as an entry point of its own would (library use of this class)."""
        self.ref = str(run_or_model)
        self.settings = settings if settings is not None else Settings.load()
        self.runs_root = runs_root
        self.base_model_path = base_model_path
        self.adapter_path: str | None = None
        self.run_path: str | None = None  # the run's folder, when chatting with a run (its documents back answers)
        self.system_prompt = system_prompt
        self.example_prompts: list[str] = []
        # transformers' model and tokenizer once loaded (typed Any: transformers is imported at load time)
        self.model: Any = None
        self.tokenizer: Any = None
        self._lock = threading.Lock()
        self._resolve()

    def _resolve(self) -> None:
        try:
            run = RunDir.open(self.ref, root=self.runs_root)
        except RunNotFoundError:
            run = None
        if run is not None:
            try:
                data = run.read()
            except DamagedRunError:
                if not (run.adapter_dir / "adapter_config.json").is_file():
                    raise
                # run.json went bad but the adapter is intact: PEFT recorded the base model in it.

                adapter_config = json.loads((run.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
                data = {"status": "done", "model_path": adapter_config.get("base_model_name_or_path")}
            if not run.adapter_dir.is_dir():
                raise InputError(f"The run {run.id} has no adapter yet (status: {data.get('status')}); "
                                 "wait for it to finish or stop it to save one.")
            self.adapter_path = str(run.adapter_dir)
            self.run_path = str(run.path)
            self.base_model_path = self.base_model_path or data.get("model_path")
            self.example_prompts = list(data.get("example_prompts") or [])
            if not self.base_model_path or not Path(self.base_model_path).is_dir():
                recorded = self.base_model_path
                try:
                    self.base_model_path = ModelManager().resolve(data.get("model", ""))[1]
                except ModelNotFoundError:
                    if not recorded:
                        raise
                    # The run names a folder that is gone: say that, not "unknown model".
                    raise InputError(f"The model folder this run was trained on, {recorded}, is gone: restore it "
                                     f"(or train again) to chat with run {run.id}.") from None
        elif self.base_model_path is None:
            self.base_model_path = ModelManager().resolve(self.ref)[1]

    @property
    def has_adapter(self) -> bool:
        """True when a tuned adapter is loaded on top of the base model."""
        return self.adapter_path is not None

    def load(self) -> ChatSession:
        """Load the base model (and adapter) on the best device; idempotent."""
        if self.model is not None:
            return self
        import torch
        from transformers import AutoModelForCausalLM

        device = chat_device(self.settings, torch.cuda.is_available())
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        base_path = self.base_model_path
        if base_path is None:  # _resolve always sets it; a caller may have cleared it
            raise InputError("No base model to chat with: name a model or a run.")
        self.tokenizer = load_tokenizer(base_path)
        model: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
        if self.adapter_path:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter_path)
        self.model = model.to(device).eval()
        return self

    def _inputs(self, prompt: str):
        messages: list[dict[str, str]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
        length = int(encoded["input_ids"].shape[1])
        limit = self.context_length()
        if limit and length >= limit:
            raise InputError(f"The prompt is {length:,} tokens and this model reads at most {limit:,}: "
                             "shorten it (nothing was generated).")
        return {k: v.to(self.model.device) for k, v in encoded.items()}

    def context_length(self) -> int | None:
        """The most tokens the model reads at once (its ``max_position_embeddings``), if it says."""
        config = getattr(self.model, "config", None)
        value = getattr(config, "max_position_embeddings", None)
        return int(value) if value else None

    def stream(self, prompt: str, tuned: bool = True, max_new_tokens: int = 200, temperature: float = 0.0
               ) -> Iterator[str]:
        """Yield the answer's text piece by piece as it is generated."""
        if not prompt.strip():
            raise InputError("The prompt is empty: type a question.")
        self.load()
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = dict(**self._inputs(prompt), max_new_tokens=max_new_tokens, streamer=streamer,
                                      pad_token_id=self.tokenizer.pad_token_id, use_cache=True)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.9)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def generate() -> None:
            import torch

            try:
                with self._lock, torch.inference_mode():
                    ctx = (self.model.disable_adapter() if (not tuned and self.has_adapter)
                           else contextlib.nullcontext())
                    with ctx:
                        self.model.generate(**kwargs)
            except BaseException as error:  # noqa: BLE001 - re-raised in the consumer's thread
                errors.append(error)
                streamer.end()

        worker = threading.Thread(target=generate, name="llmcustoms-generate", daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if errors:
            raise errors[0]

    def answer(self, prompt: str, tuned: bool = True, max_new_tokens: int = 200, temperature: float = 0.0) -> str:
        """The whole answer as one string."""
        return "".join(self.stream(prompt, tuned=tuned, max_new_tokens=max_new_tokens,
                                   temperature=temperature)).strip()

    def support_index(self) -> SupportIndex | None:
        """The run's support index (built in the run folder on first use), or None when chatting with a plain model."""
        return SupportIndex.for_run(self.run_path) if self.run_path else None

    def support(self, prompt: str, answer: str) -> Support | None:
        """The passage of the run's documents that supports ``answer`` to ``prompt`` (``Support.supported``
        False when none does); None when chatting with a plain model (no documents)."""
        index = self.support_index()
        return find_support(index, prompt, answer) if index is not None else None

    def close(self) -> None:
        """Drop the model so its memory can be freed."""

        self.model = None
        self.tokenizer = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
