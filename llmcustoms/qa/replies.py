"""A chat server's reply read as Q&A pairs: lenient about layout, strict about content."""

from __future__ import annotations

import json
import re
from typing import Any


class MalformedReply(ValueError):
    """The server's content was not the JSON object asked for."""


def parse_pairs(content: Any) -> tuple[list[dict[str, str]], int]:
    """The pairs in a reply's content, and how many items were incomplete.

    Lenient about layout because local servers without JSON mode wrap JSON in code fences or
    name the list differently; strict about content: each pair needs a question and an answer.
    Raises ``MalformedReply`` when there is no JSON object (or list) of pairs at all.
    """
    if not isinstance(content, str) or not content.strip():
        raise MalformedReply("empty content")
    text = content.strip()
    fenced = re.match(r"^```[a-zA-Z]*\s*(.*?)\s*```$", text, re.S)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise MalformedReply("not JSON") from None
        try:
            data = json.loads(text[start:end + 1])
        except ValueError:
            raise MalformedReply("not JSON") from None
    if isinstance(data, dict):
        if "question" in data and "answer" in data:
            items: Any = [data]
        elif isinstance(data.get("pairs"), list):
            items = data["pairs"]
        else:
            items = next((v for v in data.values() if isinstance(v, list)), None)
            if items is None:
                raise MalformedReply("no list of pairs")
    elif isinstance(data, list):
        items = data
    else:
        raise MalformedReply("not a JSON object")
    pairs: list[dict[str, str]] = []
    invalid = 0
    for item in items:
        if not isinstance(item, dict):
            invalid += 1
            continue
        question = item.get("question", item.get("q"))
        answer = item.get("answer", item.get("a"))
        if isinstance(question, str) and isinstance(answer, str) and question.strip() and answer.strip():
            pairs.append({"question": question.strip(), "answer": answer.strip()})
        else:
            invalid += 1
    return pairs, invalid
