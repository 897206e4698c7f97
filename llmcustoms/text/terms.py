"""Words and names: the stopwords the key-term finders skip, the pattern of a capitalised name
("Tide Engine", "House of Velmoria"), and a file's title from its path.

Shared by the offline generator (its questions are about the key terms) and the facts found in the
text (``data.facts``).
"""

from __future__ import annotations

import functools
import re
from pathlib import PurePosixPath

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each even every few for from further had has
have having he her here hers herself him himself his how however i if in into is it its itself just least
less let like made make many may me might more most much must my myself near never no nor not now of off
often on once one only or other ought our ours ourselves out over own per perhaps same she should since
so some such than that the their theirs them themselves then there these they this those though through
thus to too two under until up upon us very was we were what when where whether which while who whom whose
why will with within without would yet you your yours yourself yourselves
said says known called named first second third new old used uses using each year years time times
""".split())

# Capitalised words joined by spaces or tabs (never across a line break), allowing "of", "the", …
# A phrase never starts with a capitalised stopword ("The Tide Engine" → "Tide Engine"); doing
# that in the pattern keeps the Python loop over matches short (this is the offline hot path).
def _stopword_lookahead() -> str:
    """``(?!(?:T(?:he|his|…)|I(?:n|t|…)|…)\b)``: alternatives grouped by first letter, so the
    engine tries only the few that start like the word (about 3× faster than a flat list)."""
    groups: dict[str, list[str]] = {}
    for word in STOPWORDS:
        groups.setdefault(word[0].upper(), []).append(re.escape(word[1:]))
    alternatives = "|".join(f"{letter}(?:{'|'.join(sorted(rests, key=len, reverse=True))})"
                            for letter, rests in sorted(groups.items()))
    return rf"(?!(?:{alternatives})\b)"


CAP_PHRASE = re.compile(
    rf"(?<![\w’'\-])(?=[A-Z]){_stopword_lookahead()}[A-Z][\w’'\-]*\w"
    r"(?:(?:[ \t]+(?:of(?:[ \t]+the)?|de|del|da|von|van|la|le))?[ \t]+[A-Z][\w’'\-]*\w)*"
)


@functools.lru_cache(maxsize=1024)
def title_from_source(source: str) -> str:
    """'notes/velmoria_history.txt:3' → 'velmoria history'."""
    path = source.rsplit(":", 1)[0]  # cached: one file has many chunks
    return re.sub(r"[_\-]+", " ", PurePosixPath(path).stem).strip() or path
