"""An Ollama ``Modelfile`` whose TEMPLATE reproduces the model's own chat template.

The chat template is not translated by hand per model family. It is *measured*: the tokenizer's
Jinja template is rendered on conversations with sentinel contents, and the text around each
message gives the per-role prefix and suffix, the text before the first message (including a
default system prompt the template adds when none is given) and the generation prompt. The
result is checked by rendering other conversations both ways; a template that does not follow
the "each message wrapped the same way" pattern gets no TEMPLATE line (Ollama then falls back to
the chat template stored in the GGUF), and the verification line says so.

The Go template uses a small subset of text/template: ``range $i, $m := .Messages``, ``if``,
``else if``, ``and``, ``eq``, ``ne`` and ``{{ $m.Content }}`` — no whitespace trimming, so every
character of the literal text is emitted as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
_SENTINELS = {"system": "SYSTEMSENTINEL41", "user": "USERSENTINEL42", "assistant": "ASSISTANTSENTINEL43",
              "user2": "USERSENTINEL44", "system2": "SYSTEMSENTINEL45"}


@dataclass
class ChatFormat:
    """A chat template in the "wrap every message" shape."""

    head: str
    default_system: str
    prefix: dict[str, str]
    suffix: dict[str, str]
    generation: str
    system_supported: bool = True

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt this format gives ``messages`` (the Python twin of :meth:`go_template`)."""
        parts = [self.head]
        for index, message in enumerate(messages):
            role = message["role"] if message["role"] in ROLES else "user"
            if index == 0 and role != "system":
                parts.append(self.default_system)
            parts.append(self.prefix[role] + message["content"] + self.suffix[role])
        if add_generation_prompt:
            parts.append(self.generation)
        return "".join(parts)

    def go_template(self, head: str | None = None) -> str:
        """The Ollama TEMPLATE (Go text/template) rendering like :meth:`render` with a generation prompt."""
        lit = _go_literal
        branches = (
            f'{{{{ if eq $m.Role "system" }}}}{lit(self.prefix["system"])}{{{{ $m.Content }}}}{lit(self.suffix["system"])}'
            f'{{{{ else if eq $m.Role "assistant" }}}}{lit(self.prefix["assistant"])}{{{{ $m.Content }}}}'
            f'{lit(self.suffix["assistant"])}'
            f'{{{{ else }}}}{lit(self.prefix["user"])}{{{{ $m.Content }}}}{lit(self.suffix["user"])}{{{{ end }}}}'
        )
        default = ""
        if self.default_system:
            default = f'{{{{ if and (eq $i 0) (ne $m.Role "system") }}}}{lit(self.default_system)}{{{{ end }}}}'
        return (f"{lit(self.head if head is None else head)}{{{{ range $i, $m := .Messages }}}}{default}{branches}"
                f"{{{{ end }}}}{lit(self.generation)}")


def _go_literal(text: str) -> str:
    """Literal text for a Go template (``{{`` would open an action, so it is written as an action)."""
    return text.replace("{{", '{{ "{{" }}')


def _render(tokenizer, messages: list[dict[str, str]], generation: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _msg(role: str, key: str | None = None) -> dict[str, str]:
    return {"role": role, "content": _SENTINELS[key or role]}


def _around(text: str, sentinel: str) -> tuple[str, str]:
    """(before, after) the single occurrence of ``sentinel`` in ``text``."""
    if text.count(sentinel) != 1:
        raise ValueError(sentinel)
    before, after = text.split(sentinel)
    return before, after


def _after_prefix(text: str, prefix: str) -> str:
    if not text.startswith(prefix):
        raise ValueError("not an extension")
    return text[len(prefix):]


def _measure(tokenizer) -> ChatFormat:
    """Derive the format from renderings; ValueError when the template does not have the shape."""
    u, a, u2 = _msg("user"), _msg("assistant"), _msg("user", "user2")
    t_u = _render(tokenizer, [u], False)
    generation = _after_prefix(_render(tokenizer, [u], True), t_u)
    t_ua = _render(tokenizer, [u, a], False)
    pre_a, post_a = _around(_after_prefix(t_ua, t_u), _SENTINELS["assistant"])
    t_uau = _render(tokenizer, [u, a, u2], False)
    pre_u, post_u = _around(_after_prefix(t_uau, t_ua), _SENTINELS["user2"])
    before_u, after_u = _around(t_u, _SENTINELS["user"])
    if after_u != post_u or not before_u.endswith(pre_u):
        raise ValueError("user turns are not wrapped the same way")
    head_and_default = before_u[: len(before_u) - len(pre_u)]

    prefix = {"user": pre_u, "assistant": pre_a}
    suffix = {"user": post_u, "assistant": post_a}
    head, default, system_supported = "", head_and_default, True
    try:
        s = _msg("system")
        t_su = _render(tokenizer, [s, u], False)
        before_s, rest = _around(t_su, _SENTINELS["system"])
        between, _ = _around(rest, _SENTINELS["user"])
        if not between.endswith(pre_u):
            raise ValueError("system turn")
        suffix["system"] = between[: len(between) - len(pre_u)]
        try:  # a later system message shows the system prefix without the head
            later = _after_prefix(_render(tokenizer, [u, _msg("system", "system2")], False), t_u)
            prefix["system"], _ = _around(later, _SENTINELS["system2"])
        except Exception:
            prefix["system"] = before_s
        if not before_s.endswith(prefix["system"]):
            raise ValueError("system prefix")
        head = before_s[: len(before_s) - len(prefix["system"])]
        default = _after_prefix(head_and_default, head)
    except Exception:
        system_supported = False
        prefix["system"], suffix["system"] = pre_u, post_u
    return ChatFormat(head=head, default_system=default, prefix=prefix, suffix=suffix,
                      generation=generation, system_supported=system_supported)


#: Conversations a derived format must render exactly like the Jinja template.
CHECK_CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi there!"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4.\nAnything else?"},
     {"role": "user", "content": "No — thanks, ünïcode 🙂"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye"}],
]


def derive_chat_format(tokenizer) -> ChatFormat | None:
    """The model's chat template as a :class:`ChatFormat`, or None when it is not of that shape."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        fmt = _measure(tokenizer)
        for conversation in CHECK_CONVERSATIONS:
            if conversation[0]["role"] == "system" and not fmt.system_supported:
                continue
            if fmt.render(conversation) != _render(tokenizer, conversation, True):
                return None
    except Exception:
        return None
    return fmt


def stop_strings(fmt: ChatFormat | None, tokenizer) -> list[str]:
    """Stop sequences: the end-of-turn and end-of-text tokens, and the start of a new user turn."""
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t]
    stops: list[str] = []
    if fmt is not None:
        for piece in (fmt.suffix["assistant"], fmt.prefix["user"]):
            stops.extend(s for s in specials if s in piece)
        if not any(s in fmt.prefix["user"] for s in specials) and fmt.prefix["user"].strip():
            stops.append(fmt.prefix["user"].strip())
    if getattr(tokenizer, "eos_token", None):
        stops.append(tokenizer.eos_token)
    seen: list[str] = []
    for stop in stops:
        if stop and stop not in seen and '"' not in stop and "\n" not in stop:
            seen.append(stop)
    return seen


def sampling_parameters(generation_config: Any, context_length: int) -> dict[str, Any]:
    """Ollama PARAMETERs: the model's own sampling defaults where it has them, else sensible ones."""
    def get(name: str, default: Any) -> Any:
        value = getattr(generation_config, name, None) if generation_config is not None else None
        return default if value is None else value

    sampled = bool(get("do_sample", False))
    return {
        "temperature": float(get("temperature", 0.7)) if sampled else 0.7,
        "top_p": float(get("top_p", 0.9)) if sampled else 0.9,
        "repeat_penalty": float(get("repetition_penalty", 1.1)) if get("repetition_penalty", 1.0) != 1.0 else 1.1,
        "num_ctx": int(min(context_length, 4096)),
    }


def ollama_model_name(run_id: str) -> str:
    """A valid Ollama model name for a run."""
    name = re.sub(r"[^a-z0-9._-]+", "-", f"llmcustoms-{run_id}".lower()).strip("-.")
    return name[:80]


def build_modelfile(gguf_name: str, fmt: ChatFormat | None, tokenizer, parameters: dict[str, Any],
                    title: str, add_bos: bool) -> str:
    """The Modelfile text (FROM, TEMPLATE, PARAMETERs) for the GGUF file ``gguf_name`` next to it."""
    lines = [f"# {title}", "# Create the Ollama model with:  ollama create <name> -f Modelfile",
             f"FROM ./{gguf_name}"]
    if fmt is not None:
        head = fmt.head
        bos = getattr(tokenizer, "bos_token", None)
        if add_bos and bos and head.startswith(bos):
            head = head[len(bos):]  # the runtime adds BOS itself when the GGUF says so
        template = fmt.go_template(head=head)
        if '"""' not in template:
            lines.append(f'TEMPLATE """{template}"""')
    else:
        lines.append("# No TEMPLATE: Ollama uses the chat template stored in the GGUF file.")
    for stop in stop_strings(fmt, tokenizer):
        lines.append(f'PARAMETER stop "{stop}"')
    for key, value in parameters.items():
        lines.append(f"PARAMETER {key} {value:g}" if isinstance(value, float) else f"PARAMETER {key} {value}")
    lines.append("# For a system prompt of your own, add a SYSTEM line (see Ollama's Modelfile reference).")
    return "\n".join(lines) + "\n"
