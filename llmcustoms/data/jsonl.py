"""Examples to and from JSONL: one ``{"messages": [...], "source": ..., "kind": ...}`` a line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from llmcustoms.data.types import Example
from llmcustoms.errors import DataError

_KINDS = ("explicit", "generated", "offline")


def write_examples_jsonl(examples: Iterable[Example], path: str | os.PathLike[str]) -> int:
    """Write ``examples`` to ``path`` (UTF-8, atomically: a temporary file renamed into place).

    Returns how many lines were written. Parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            for example in examples:
                handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def read_examples_jsonl(path: str | os.PathLike[str]) -> list[Example]:
    """Examples from a JSONL file; a malformed line raises DataError naming the file and line."""
    source = Path(path)
    try:
        handle = open(source, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"Cannot read '{source}' ({exc.strerror}); check the path.") from None
    examples: list[Example] = []
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                messages = data["messages"]
                if not isinstance(messages, list) or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in messages
                ):
                    raise ValueError("messages must be a list of {role, content}")
                kind = data.get("kind", "generated")
                examples.append(Example(messages=[{"role": m["role"], "content": m["content"]} for m in messages],
                                        source=str(data.get("source", f"{source.name}:{number}")),
                                        kind=kind if kind in _KINDS else "generated"))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"Line {number} of '{source}' is not a valid example ({exc}); each line must be "
                                f'{{"messages": [{{"role": ..., "content": ...}}, ...]}}.') from None
    return examples
