"""Chat examples the user already has, in ``.jsonl`` files of the data folder, used as they are.

Three layouts are read, one example a line, and may be mixed in one file:

- OpenAI: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
- ShareGPT: ``{"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}, ...]}``
- Alpaca: ``{"instruction": "...", "input": "...", "output": "..."}`` (``input`` may be empty)

Each line is checked: known roles, no empty turn, at least one user turn, ending with the assistant's
answer (what the model learns). A bad line is named by file and line number and left out; the rest
of the file is used.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from llmcustoms.data.types import Example

#: ShareGPT's speaker names and the chat roles they stand for.
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "chatgpt": "assistant", "bot": "assistant", "model": "assistant"}
_ROLES = ("system", "user", "assistant")
#: Bad lines named one by one in the report; more are counted.
MAX_NAMED_BAD_LINES = 5


@dataclass
class ChatFile:
    """The examples read from one ``.jsonl`` file, the layouts seen, and the lines left out."""

    relpath: str
    examples: list[Example] = field(default_factory=list)
    layouts: Counter[str] = field(default_factory=Counter)
    bad_lines: list[str] = field(default_factory=list)  # one sentence each, naming file and line
    chars: int = 0
    words: int = 0


class _BadLine(ValueError):
    """Why one line is not an example (the end of a sentence)."""


def _turns(data: object) -> tuple[str, list[dict[str, str]]]:
    """(the layout's name, the messages) of one decoded line; _BadLine when it fits no layout."""
    if not isinstance(data, dict):
        raise _BadLine("is not a JSON object")
    if "messages" in data:
        raw = data["messages"]
        if not isinstance(raw, list):
            raise _BadLine('has "messages" that is not a list')
        turns = []
        for number, turn in enumerate(raw, 1):
            if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or "content" not in turn:
                raise _BadLine(f'has message {number} without a "role" and a "content"')
            turns.append({"role": turn["role"], "content": turn["content"]})
        return "openai", turns
    if "conversations" in data:
        raw = data["conversations"]
        if not isinstance(raw, list):
            raise _BadLine('has "conversations" that is not a list')
        turns = []
        for number, turn in enumerate(raw, 1):
            if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or "value" not in turn:
                raise _BadLine(f'has turn {number} without a "from" and a "value"')
            speaker = turn["from"].strip().lower()
            if speaker not in _SHAREGPT_ROLES:
                raise _BadLine(f"has turn {number} from '{turn['from']}', not one of human, gpt or system")
            turns.append({"role": _SHAREGPT_ROLES[speaker], "content": turn["value"]})
        return "sharegpt", turns
    if "instruction" in data and "output" in data:
        instruction, extra, output = data["instruction"], data.get("input") or "", data["output"]
        if not all(isinstance(value, str) for value in (instruction, extra, output)):
            raise _BadLine('has an "instruction", "input" or "output" that is not text')
        prompt = instruction.strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
        return "alpaca", [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    raise _BadLine('is in none of the layouts read ("messages", "conversations", or "instruction" with '
                   '"output")')


def _check(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The turns, stripped, after the checks; _BadLine naming the first problem."""
    checked = []
    for number, turn in enumerate(turns, 1):
        role, content = turn["role"], turn["content"]
        if role not in _ROLES:
            raise _BadLine(f"has message {number} with the role '{role}', not one of system, user or assistant")
        if not isinstance(content, str):
            raise _BadLine(f"has message {number} whose content is not text")
        if not content.strip():
            raise _BadLine(f"has an empty {role} turn (message {number})")
        checked.append({"role": role, "content": content.strip()})
    if not any(t["role"] == "user" for t in checked):
        raise _BadLine("has no user turn")
    if checked[-1]["role"] != "assistant":
        raise _BadLine("does not end with an assistant turn (the answer the model learns)")
    return checked


def read_chat_file(path: Path, relpath: str) -> ChatFile:
    """The examples of one chat ``.jsonl`` file (UTF-8); OSError when it cannot be opened or read."""
    result = ChatFile(relpath=relpath)
    with open(path, encoding="utf-8-sig", errors="strict") as handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                result.bad_lines.append(f"'{relpath}' line {number + 1} is not UTF-8 text; the rest of the file "
                                        f"was not read.")
                break
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            try:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise _BadLine(f"is not valid JSON ({exc.msg} at column {exc.colno})") from None
                layout, turns = _turns(data)
                messages = _check(turns)
            except _BadLine as bad:
                result.bad_lines.append(f"'{relpath}' line {number} {bad}; left it out.")
                continue
            result.layouts[layout] += 1
            result.examples.append(Example(messages=messages, source=f"{relpath}:{number}", kind="explicit"))
            for message in messages:
                result.chars += len(message["content"])
                result.words += len(message["content"].split())
    return result
