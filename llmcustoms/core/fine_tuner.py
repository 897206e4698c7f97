"""FineTuner: the seed's facade — data → model → train → test in four calls.

    tuner = FineTuner("./my_text_files/", model="auto", preset="quality")
    adapter_path = tuner.train()
    tuner.test_model(["What is …?"])
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from llmcustoms.training.events import EventSink, ListSink
from llmcustoms.training.trainer import TrainRequest, TrainResult, run_training
from llmcustoms.utils.validators import check_preset


class FineTuner:
    """Fine-tune a small chat model on a folder of .txt files."""

    def __init__(self, data_path: str, model: str = "auto", preset: str = "quality", *,
                 max_steps: int | None = None, output_dir: str | None = None, qa: str = "auto",
                 sink: EventSink | None = None, progress: bool = True, allow_send: bool = False) -> None:
        """``allow_send=True`` lets the folder's text go to the Q&A server when GROQ_API_KEY is set (``qa``
        'auto' or 'groq'); without it nothing is sent and offline examples are built instead."""
        self.data_path = str(data_path)
        self.model_name = model
        self.preset = check_preset(preset)
        self.max_steps = max_steps
        self.output_dir = output_dir
        self.qa = qa
        self.allow_send = allow_send
        self.events = ListSink()
        self.sink = sink
        self.progress = progress
        self.result: TrainResult | None = None
        self.stop_event = threading.Event()
        self._model_path: str | None = None
        self._chat = None

    def _request(self) -> TrainRequest:
        from llmcustoms.utils.config import Config

        max_steps = self.max_steps or Config().load_env_config()["MAX_STEPS"]
        return TrainRequest(data_path=self.data_path, model=self.model_name, preset=self.preset,
                            max_steps=max_steps, output_dir=self.output_dir, qa=self.qa,
                            send_consent=self.allow_send)

    def _resolved_model(self) -> tuple[str, str]:
        from llmcustoms.training.trainer import choose_device, resolve_model
        from llmcustoms.utils.config import Config

        device = choose_device(None, Config().load_env_config()["FORCE_CPU"])
        name, path = resolve_model(self.model_name, device, self.events)
        self._model_path = path
        return name, path

    def prepare_data(self):
        """The tokenized training examples (a ``datasets.Dataset``) built from the folder."""
        from llmcustoms.data.examples import build_examples
        from llmcustoms.data.reader import validate_folder
        from llmcustoms.data.split import split_examples
        from llmcustoms.data.tokenize import tokenize_examples
        from llmcustoms.training.model_loading import load_tokenizer
        from llmcustoms.training.presets import get_preset
        from llmcustoms.training.trainer import send_permission

        report = validate_folder(self.data_path)
        report.raise_if_blocked()
        _, model_path = self._resolved_model()
        tokenizer = load_tokenizer(model_path)
        say = lambda m: print(m, file=sys.stderr)  # noqa: E731
        built = build_examples(report, qa=self.qa, on_message=say, confirm=send_permission(self._request(), say))
        train, _ = split_examples(built.examples)
        return tokenize_examples(train, tokenizer, int(get_preset(self.preset)["max_seq_len"]))

    def setup_model(self) -> tuple[Any, Any]:
        """(model with a fresh LoRA adapter, tokenizer), configured as training would use them."""
        from llmcustoms.training.model_loading import load_for_training
        from llmcustoms.training.trainer import choose_device, resolve_train_config
        from llmcustoms.utils.config import Config

        name, path = self._resolved_model()
        device = choose_device(None, Config().load_env_config()["FORCE_CPU"])
        config, _ = resolve_train_config(self._request(), name, device)
        return load_for_training(path, config)

    def train(self) -> str:
        """Train and return the saved adapter's path."""
        from llmcustoms.training.events import FanoutSink
        from llmcustoms.training.progress import ProgressPrinter

        printer = ProgressPrinter() if self.progress else None
        self.stop_event.clear()  # a stop asked of an earlier train() must not end this one
        try:
            self.result = run_training(self._request(), sink=FanoutSink(self.events, self.sink, printer),
                                       stop=self.stop_event)
        finally:
            if printer is not None:
                printer.close()
        self._model_path = self.result.run_dir.read().get("model_path")
        return str(self.result.adapter_path)

    def test_model(self, prompts: list[str] | None = None, compare: bool = False) -> list[dict[str, str]]:
        """Answer ``prompts`` (default: held-out questions of the run) and print them; returns the answers."""
        from llmcustoms.chat.session import ChatSession

        if self._chat is None:
            if self.result is not None:
                self._chat = ChatSession(self.result.run_dir.path)
            else:
                self._chat = ChatSession(self._model_path or self._resolved_model()[1])
        chat = self._chat.load()
        prompts = prompts or chat.example_prompts[:3] or ["What is this material about?"]
        results = []
        for prompt in prompts:
            tuned = chat.answer(prompt, tuned=True)
            entry = {"prompt": prompt, "answer": tuned}
            print(f"\n> {prompt}\n{tuned}")
            if compare and chat.has_adapter:
                entry["base_answer"] = chat.answer(prompt, tuned=False)
                print(f"  (base model) {entry['base_answer']}")
            results.append(entry)
        return results

    def close(self) -> None:
        """Free the chat model's memory."""
        if self._chat is not None:
            self._chat.close()
            self._chat = None


