"""What generating Q&A will cost before anything is sent (``GenerationPlan``), a server's rate limits,
and what a run did (``GenerationStats``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Rough sizes for the estimate only: a pair is ~15 question + ~45 answer tokens + JSON punctuation.
TOKENS_PER_PAIR = 70
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class RateLimits:
    """A server's limits, used to estimate how long a run takes (None: unknown / unlimited)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    label: str = ""


#: Groq's free tier for llama-3.3-70b-versatile (console.groq.com/docs/rate-limits). Paid tiers
#: are higher; the estimate errs on the slow side, which is the safe side for a confirmation.
GROQ_FREE_TIER = RateLimits(30, 12_000, 1_000, 100_000, label="Groq's free tier")


def is_groq(url: str) -> bool:
    """True when ``url`` is Groq's own API (its free-tier limits apply; a key is required)."""
    host = urlsplit(url).hostname or ""
    return host == "groq.com" or host.endswith(".groq.com")


def estimate_tokens(text: str) -> int:
    """A rough token count (four characters a token), for estimates only."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless n is 1 ("1 chunk", "2,000 chunks")."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def format_duration(seconds: float) -> str:
    """A rough duration a person reads at a glance ("about 12 min")."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


@dataclass
class GenerationPlan:
    """What a run will send, and roughly what it costs, before anything is sent."""

    name: str
    server: str
    model: str
    chunks: int
    cached: int
    to_send: int
    pairs_per_chunk: int
    tokens_in: int
    tokens_out: int
    seconds: float
    concurrency: int
    rate_limits: RateLimits | None = None
    warnings: list[str] = field(default_factory=list)
    distinct: int | None = None  # distinct chunk texts (the same text is sent once)

    @property
    def requests(self) -> int:
        """Requests a run without retries makes (one per chunk not cached)."""
        return self.to_send

    def describe(self) -> str:
        """A few lines for a person deciding whether to go ahead."""
        lines = [f"Q&A generation with {self.name} ({self.server})"]
        repeated = f" ({self.distinct:,} distinct)" if self.distinct not in (None, self.chunks) else ""
        lines.append(f"  {plural(self.chunks, 'chunk')}{repeated}, {plural(self.pairs_per_chunk, 'pair')} asked per chunk: "
                     f"{self.cached} already cached, {self.to_send} to send")
        if self.to_send == 0:
            lines.append("  nothing to send: every chunk is already cached")
        else:
            lines.append(f"  about {self.tokens_in:,} tokens in and {self.tokens_out:,} tokens out")
            limits = self.rate_limits
            if limits and (limits.requests_per_minute or limits.tokens_per_minute):
                parts = []
                if limits.requests_per_minute:
                    parts.append(f"{limits.requests_per_minute:,} requests/min")
                if limits.tokens_per_minute:
                    parts.append(f"{limits.tokens_per_minute:,} tokens/min")
                where = f" on {limits.label}" if limits.label else ""
                lines.append(f"  {format_duration(self.seconds)} at the server's rate limits "
                             f"({', '.join(parts)}{where})")
            else:
                in_flight = plural(min(self.concurrency, self.to_send), "request")
                lines.append(f"  {format_duration(self.seconds)} with {in_flight} in flight "
                             "(no known rate limit; a rough guess)")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json``); holds no secret."""
        data = asdict(self)
        data["requests"] = self.requests
        return data


@dataclass
class GenerationStats:
    """What the last ``generate`` call did, chunk by chunk and pair by pair."""

    chunks: int = 0
    cached: int = 0  # chunks served from the cache (nothing sent)
    sent: int = 0  # chunks sent to the server
    requests: int = 0  # HTTP requests, retries included
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    empty: int = 0  # chunks for which the server found nothing to ask
    malformed_skipped: int = 0  # chunks skipped after content that was not the JSON asked for, twice
    failed: int = 0  # chunks that failed (timeouts, 5xx, other errors) after retries
    pairs_received: int = 0
    invalid_pairs: int = 0  # items without a question or an answer
    dropped_ungrounded: int = 0
    duplicates: int = 0
    pairs_kept: int = 0
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the end of a run."""
        text = (f"{plural(self.pairs_kept, 'Q&A pair')} from {plural(self.chunks, 'chunk')} "
                f"({self.cached} cached, {self.sent} sent); "
                f"dropped {self.dropped_ungrounded} ungrounded and {self.duplicates} duplicates")
        extra = [f"{n} {label}" for n, label in (
            (self.empty, "chunks with nothing to ask"), (self.malformed_skipped, "chunks skipped for malformed replies"),
            (self.failed, "chunks failed"), (self.invalid_pairs, "incomplete pairs")) if n]
        return text + ("; " + ", ".join(extra) if extra else "") + "."
