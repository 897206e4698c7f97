"""The support mark as text for the command line and ``FineTuner.test_model``."""

from __future__ import annotations

import textwrap

from llmcustoms.support.verdict import Support

#: What starts the line under an answer.
ARROW = "  ↳ "


def support_lines(support: Support, whole: bool = False) -> list[str]:
    """The line under an answer (where it is supported and the marked quote, or that nothing supports it);
    with ``whole`` also the passage itself (the closest one, said so, when it does not support the answer)."""
    lines = [ARROW + support.line_text()]
    if whole and support.passage:
        heading = support.location() if support.supported else f"closest passage, which does not: {support.location()}"
        lines.append(f"    ── {heading}")
        for paragraph in support.passage.splitlines():
            lines.extend(textwrap.wrap(paragraph, 100, initial_indent="    │ ", subsequent_indent="    │ ") or ["    │"])
    return lines
