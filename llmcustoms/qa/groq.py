"""Q&A pairs from prose through Groq or any OpenAI-compatible chat-completions server.

``generator_from_config(config)`` builds an :class:`OpenAICompatibleGenerator` from the resolved
settings (``GROQ_API_KEY``, ``GROQ_BASE_URL``, ``GROQ_MODEL``). It implements the ``QAGenerator``
protocol of ``llmcustoms.qa.generator``: ``plan(chunks)`` says what a run will cost before anything
is sent, ``generate(chunks)`` returns grounded, de-duplicated chat examples. The prompt is in
``prompts.py``, the cost plan and the run's statistics in ``cost.py``, the reading of a reply in
``replies.py``, and the requests with their retries in ``chat_server.py``.

Why httpx and not an SDK: the retry policy is part of the product (a few requests in flight, 429s
that honour ``retry-after`` and pause every worker, 5xx and timeouts backed off, a refused key that
stops at once), and every finished chunk must reach the on-disk cache before the next one is
counted, so Ctrl+C or a crash loses at most the requests in flight.

``GROQ_BASE_URL`` means what it means in Groq's own SDK: the server's root, to which
``/openai/v1/chat/completions`` is appended. Servers that serve the OpenAI layout (Ollama, vLLM,
llama.cpp's server) are reached by giving their ``.../v1`` base, which gets ``/chat/completions``.

The API key lives in one private attribute and the request header; it is scrubbed from every
message this module produces and never reaches ``name``, the cache, logs or errors.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from llmcustoms.errors import ConfigError, GeneratorError
from llmcustoms.paths import home_dir
from llmcustoms.qa.cache import QACache, cache_key

# chat_completions_url and GROQ_CHAT_PATH are re-exported: they were defined here, and callers import them from here.
from llmcustoms.qa.chat_server import (  # noqa: F401
    GROQ_CHAT_PATH,
    ChatServerClient,
    chat_completions_url,
    display_url,
)
from llmcustoms.qa.cost import (
    GROQ_FREE_TIER,
    TOKENS_PER_PAIR,
    GenerationPlan,
    GenerationStats,
    RateLimits,
    estimate_tokens,
    is_groq,
)
from llmcustoms.qa.generator import ProgressCallback
from llmcustoms.qa.grounding import DEFAULT_MIN_OVERLAP, content_words, is_grounded, normalise_question
from llmcustoms.qa.prompts import PROMPT_VERSION, SYSTEM_PROMPT, USER_PROMPT
from llmcustoms.qa.replies import parse_pairs
from llmcustoms.text.types import Chunk, Example
from llmcustoms.utils.logger import get_logger

DEFAULT_BASE_URL = "https://api.groq.com"
DEFAULT_MODEL = "llama-3.3-70b-versatile"

#: Seconds to wait for a reply to one request (GROQ_TIMEOUT overrides it) and for a connection to open.
#: A server that accepts and never answers costs one of these, not minutes: see MAX_TIMEOUTS_IN_A_ROW.
REQUEST_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
#: Requests in a row (across workers, no reply in between) that time out before generation stops.
MAX_TIMEOUTS_IN_A_ROW = 3
#: While no chunk finishes, ``progress`` is called again this often, so a progress line keeps moving.
PROGRESS_TICK_S = 1.0

log = get_logger("llmcustoms.qa.groq")


@dataclass
class _ChunkResult:
    status: Literal["ok", "malformed", "failed", "cancelled"]
    pairs: list[dict[str, str]] = field(default_factory=list)
    invalid: int = 0
    reason: str = ""


class OpenAICompatibleGenerator(ChatServerClient):
    """Generates grounded Q&A examples from chunks through a chat-completions server.

    Implements ``llmcustoms.qa.generator.QAGenerator`` plus ``plan``. Knobs other than the
    contract's are keyword arguments with production defaults; tests shrink the waits. The
    requests themselves, and their retry policy, are ``ChatServerClient``'s.
    """

    _log = log

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        *,
        pairs_per_chunk: int = 3,
        concurrency: int = 4,
        cache_dir: str | Path | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        max_timeouts_in_a_row: int = MAX_TIMEOUTS_IN_A_ROW,
        max_retries: int = 2,
        max_rate_limit_retries: int = 8,
        max_retry_after: float = 60.0,
        give_up_retry_after: float = 600.0,
        backoff_base: float = 1.0,
        min_overlap: float = DEFAULT_MIN_OVERLAP,
        max_consecutive_failures: int = 3,
        temperature: float = 0.3,
        json_mode: bool = True,
        rate_limits: RateLimits | None | Literal["auto"] = "auto",
    ) -> None:
        if pairs_per_chunk < 1:
            raise ConfigError(f"Pairs per chunk must be at least 1, not {pairs_per_chunk}.")
        if concurrency < 1:
            raise ConfigError(f"Requests in flight must be at least 1, not {concurrency}.")
        super().__init__(api_key, base_url, model, concurrency=concurrency, timeout=timeout,
                         connect_timeout=connect_timeout, max_retries=max_retries,
                         max_rate_limit_retries=max_rate_limit_retries, max_retry_after=max_retry_after,
                         give_up_retry_after=give_up_retry_after, backoff_base=backoff_base, json_mode=json_mode)
        self.pairs_per_chunk = pairs_per_chunk
        self.cache = QACache(cache_dir)
        self.max_timeouts_in_a_row = max_timeouts_in_a_row
        self._timeouts_in_a_row = 0  # reset by any reply: a slow server is not a dead one
        self.min_overlap = min_overlap
        self.max_consecutive_failures = max_consecutive_failures
        self.temperature = temperature
        groq = is_groq(self.base_url)
        self.rate_limits = (GROQ_FREE_TIER if groq else None) if rate_limits == "auto" else rate_limits
        #: Shown to the user and stored with runs: provider and model, never the key.
        self.name = f"groq:{model}" if groq else f"openai-compatible:{model}@{self.host}"
        self.stats = GenerationStats()
        #: The examples of the chunks finished before an interruption (``generate`` re-raises it).
        self.partial_examples: list[Example] = []

    def __repr__(self) -> str:
        return f"OpenAICompatibleGenerator(name={self.name!r}, server={self.server!r})"

    # -- prompt, keys, plan ---------------------------------------------------------------------

    def messages_for(self, chunk_text: str) -> list[dict[str, str]]:
        """The chat messages sent for one chunk."""
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": USER_PROMPT.format(n=self.pairs_per_chunk, chunk=chunk_text)}]

    def cache_key(self, chunk_text: str) -> str:
        """The cache key of one chunk: server, model, prompt version, pairs asked, text."""
        return cache_key(self.server, self.model, PROMPT_VERSION, self.pairs_per_chunk, chunk_text)

    def _max_tokens(self) -> int:
        # Room for long answers; a cut-off reply is malformed JSON and costs a retry.
        return self.pairs_per_chunk * 160 + 100

    def plan(self, chunks: list[Chunk]) -> GenerationPlan:
        """What ``generate(chunks)`` would send and roughly cost; sends nothing."""
        keys = {self.cache_key(c.text): c for c in chunks}  # the same text twice is sent once
        to_send = [c for key, c in keys.items() if self.cache.get(key) is None]
        cached = len(keys) - len(to_send)
        overhead = sum(estimate_tokens(m["content"]) for m in self.messages_for("")) + 10
        tokens_in = sum(overhead + estimate_tokens(c.text) for c in to_send)
        tokens_out = len(to_send) * (self.pairs_per_chunk * TOKENS_PER_PAIR + 10)
        # Time is the slowest of: the request limit, the token limit, and the server's speed.
        speed = 250.0 if is_groq(self.base_url) else 40.0  # output tokens/s, a rough guess
        per_request = 0.5 + (tokens_out / max(1, len(to_send))) / speed
        seconds = math.ceil(len(to_send) / self.concurrency) * per_request
        warnings: list[str] = []
        limits = self.rate_limits
        if limits and to_send:
            if limits.requests_per_minute:
                seconds = max(seconds, len(to_send) / limits.requests_per_minute * 60)
            if limits.tokens_per_minute:
                seconds = max(seconds, (tokens_in + tokens_out) / limits.tokens_per_minute * 60)
            over_day = (limits.requests_per_day and len(to_send) > limits.requests_per_day) or (
                limits.tokens_per_day and tokens_in + tokens_out > limits.tokens_per_day)
            if over_day:
                warnings.append(
                    f"this is more than a day's limit{' on ' + limits.label if limits.label else ''}: the run "
                    "will stop when the server says so, and a later run continues from the cache")
        return GenerationPlan(
            name=self.name, server=self.server, model=self.model, chunks=len(chunks), cached=cached,
            to_send=len(to_send), pairs_per_chunk=self.pairs_per_chunk, tokens_in=tokens_in,
            tokens_out=tokens_out, seconds=seconds, concurrency=self.concurrency, rate_limits=limits,
            warnings=warnings, distinct=len(keys),
        )

    # -- one chunk, in a worker thread ------------------------------------------------------------

    # Hooks of ChatServerClient: what generation adds to the shared retry policy.

    def _count(self, name: str) -> None:
        """Requests, retries and 429s go to ``stats`` (workers count at once, hence the lock)."""
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _on_reply(self) -> None:
        """Any reply resets the timeouts in a row: a slow server is not a dead one."""
        with self._lock:
            self._timeouts_in_a_row = 0

    def _timeout_reason(self, exc: httpx.TimeoutException) -> str:
        """Count a timed-out request; stop the whole run (GeneratorError, said once) when they keep coming."""
        connect = isinstance(exc, httpx.ConnectTimeout)
        limit = min(self.connect_timeout, self.timeout) if connect else self.timeout
        what = "accept a connection" if connect else "answer"
        with self._lock:
            self._timeouts_in_a_row += 1
            in_a_row = self._timeouts_in_a_row
        if in_a_row >= self.max_timeouts_in_a_row:
            raise GeneratorError(
                f"The server at {self.server} did not {what} within {limit:g} s ({in_a_row} requests in a row), "
                "so Q&A generation stopped: check that the server is running and not overloaded, or allow "
                "more time with GROQ_TIMEOUT (seconds).")
        return f"the server did not {what} within {limit:g} s"

    def _transport_reason(self, exc: httpx.TransportError) -> str:
        """Why the chunk could not be sent, with httpx's own words (they name the address)."""
        return f"could not reach {self.server} ({type(exc).__name__}: {exc})"

    def _is_unparsable_error(self, status: int, message: str) -> bool:
        # Groq's JSON mode refuses a reply that is not JSON with a 400: the same as bad content.
        low = message.lower()
        return status == 400 and ("json_validate_failed" in low or "failed to generate json" in low)

    def _json_mode_refused(self) -> None:
        log.warning(self._safe(f"{self.server} does not support JSON mode; asking for JSON in the prompt only."))

    def _process_chunk(self, client: httpx.Client, chunk: Chunk, key: str) -> _ChunkResult:
        """Send one chunk until it succeeds, is given up, or the run stops; cache a success.

        Raises ``GeneratorError`` (every worker already stopped) for a refused key, a missing
        endpoint, a days-long rate limit, timeouts that keep coming or a cache that cannot be written.
        """
        outcome = self._exchange(client, self.messages_for(chunk.text), parse_pairs, temperature=self.temperature,
                                 max_tokens=self._max_tokens(), label=chunk.source)
        if outcome.kind == "ok":
            pairs, invalid = outcome.value
            try:
                self.cache.put(key, pairs, {
                    "server": self.server, "model": self.model, "prompt_version": PROMPT_VERSION,
                    "pairs_per_chunk": self.pairs_per_chunk, "source": chunk.source,
                })
            except OSError as exc:
                # Without the cache an interrupted run would pay for everything again: stop.
                self._stop.set()
                raise GeneratorError(f"Could not write the Q&A cache in {self.cache.root} "
                                     f"({exc.strerror or exc}); free some space or fix its "
                                     "permissions and run again.") from None
            return _ChunkResult("ok", pairs=pairs, invalid=invalid)
        if outcome.kind == "unparsable":
            return _ChunkResult("malformed", reason=f"{outcome.reason} ({outcome.detail})")
        if outcome.kind == "failed":
            return _ChunkResult("failed", reason=outcome.reason)
        if outcome.kind == "stopped":
            return _ChunkResult("cancelled")
        status, message = outcome.status, outcome.message
        if outcome.kind == "refused":
            raise GeneratorError(
                f"The server at {self.server} answered HTTP {status}: the key was refused. Check "
                f"GROQ_API_KEY (in .env or the environment). The server said: {message}")
        if outcome.kind == "no_endpoint":
            raise GeneratorError(
                f"The server at {self.server} has no {urlsplit(self.url).path} endpoint"
                f" or no model {self.model!r} (HTTP 404). Check GROQ_BASE_URL (the server's "
                f"root, e.g. https://api.groq.com, or http://host:port/v1 for Ollama, vLLM or "
                f"llama.cpp) and GROQ_MODEL. The server said: {message}")
        raise GeneratorError(  # rate_limited_too_long
            f"The server at {self.server} is rate limiting this key for about "
            f"{math.ceil((outcome.retry_after or 0) / 60)} min (a daily limit?). Finished chunks are cached: "
            f"run again later to continue. The server said: {message}")

    # -- the run --------------------------------------------------------------------------------

    def _assemble(self, chunks: Iterable[Chunk], results: dict[str, list[dict[str, str]]]) -> list[Example]:
        """Examples in chunk order: ungrounded answers dropped, repeated questions removed."""
        examples: list[Example] = []
        seen_keys: set[str] = set()
        seen_questions: set[str] = set()
        stats = self.stats
        stats.pairs_received = stats.empty = stats.dropped_ungrounded = stats.duplicates = 0
        for chunk in chunks:
            key = self.cache_key(chunk.text)
            if key in seen_keys or key not in results:
                continue  # the same text twice yields its pairs once; failed chunks yield none
            seen_keys.add(key)
            pairs = results[key]
            stats.pairs_received += len(pairs)
            if not pairs:
                stats.empty += 1
                continue
            chunk_words = content_words(chunk.text)
            for pair in pairs:
                if not is_grounded(pair["answer"], chunk_words, self.min_overlap):
                    stats.dropped_ungrounded += 1
                    continue
                normal = normalise_question(pair["question"])
                if not normal or normal in seen_questions:
                    stats.duplicates += 1
                    continue
                seen_questions.add(normal)
                examples.append(Example(
                    messages=[{"role": "user", "content": pair["question"]},
                              {"role": "assistant", "content": pair["answer"]}],
                    source=chunk.source, kind="generated"))
        stats.pairs_kept = len(examples)
        return examples

    def generate(self, chunks: list[Chunk], progress: ProgressCallback | None = None) -> list[Example]:
        """Examples for ``chunks``: cached chunks are read, the rest sent, a few at a time.

        ``progress(done, total)`` is called in this thread after each chunk, and every second while no
        chunk finishes (so a progress line can show the wait). A server that keeps timing out
        (``max_timeouts_in_a_row``), a refused key, a
        missing endpoint or a run of failures raises ``GeneratorError``; ``KeyboardInterrupt``
        (from Ctrl+C or from ``progress``) stops the run and is re-raised. Either way every finished
        chunk is already cached, requests in flight are let finish, and ``partial_examples`` holds
        what was made, so a rerun sends only the rest.
        """
        self.stats = GenerationStats(chunks=len(chunks))
        self.partial_examples = []
        self._stop = threading.Event()
        self._pause_until = 0.0
        self._timeouts_in_a_row = 0
        results: dict[str, list[dict[str, str]]] = {}
        owners: dict[str, int] = {}  # key -> how many chunks share that text
        to_send: dict[str, Chunk] = {}
        for chunk in chunks:
            key = self.cache_key(chunk.text)
            owners[key] = owners.get(key, 0) + 1
            if key in results or key in to_send:
                continue
            cached = self.cache.get(key)
            if cached is None:
                to_send[key] = chunk
            else:
                results[key] = cached
                self.stats.cached += 1
        total = len(chunks)
        done = total - sum(owners[key] for key in to_send)
        if progress:
            progress(done, total)
        if not to_send:
            return self._finish(chunks, results)

        log.info(self._safe(f"Q&A: {len(to_send)} chunks to {self.name} at {self.server} "
                            f"({self.stats.cached} cached, {self.concurrency} in flight)"))
        client = self._client()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(to_send)), thread_name_prefix="llmcustoms-qa")
        futures: dict[Future[_ChunkResult], str] = {
            pool.submit(self._process_chunk, client, chunk, key): key for key, chunk in to_send.items()}
        pending = set(futures)
        consecutive_failures = 0
        last_progress = time.monotonic()
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                if progress and not finished and time.monotonic() - last_progress >= PROGRESS_TICK_S:
                    # Nothing finished: call again anyway, so a progress line can say how long it waits.
                    last_progress = time.monotonic()
                    progress(done, total)
                for future in finished:
                    key = futures[future]
                    result = future.result()  # a GeneratorError from a worker stops the run here
                    if result.status == "cancelled":
                        continue
                    self.stats.sent += 1
                    source = to_send[key].source
                    if result.status == "ok":
                        results[key] = result.pairs
                        self.stats.invalid_pairs += result.invalid
                        consecutive_failures = 0
                    else:
                        if result.status == "malformed":
                            self.stats.malformed_skipped += 1
                        else:
                            self.stats.failed += 1
                        log.warning(self._safe(f"Q&A: skipped {source}: {result.reason}"))
                        consecutive_failures += 1
                        if consecutive_failures >= self.max_consecutive_failures:
                            raise GeneratorError(self._safe(
                                f"Stopped Q&A generation after {consecutive_failures} chunks in a row failed at "
                                f"{self.server}; the last: {result.reason}. Finished chunks are cached: run "
                                "again to continue."))
                    done += owners[key]
                    if progress:
                        last_progress = time.monotonic()
                        progress(done, total)
        except BaseException as exc:
            # Stop cleanly: nothing new starts, requests in flight finish and are cached.
            self._stop.set()
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
            self.partial_examples = self._assemble(chunks, results)
            if isinstance(exc, KeyboardInterrupt):
                self.stats.interrupted = True
                log.warning(f"Q&A generation interrupted: {len(results)} chunks are done and cached; "
                            "run again to continue.")
            raise
        pool.shutdown(wait=True)
        client.close()
        return self._finish(chunks, results)

    def _finish(self, chunks: list[Chunk], results: dict[str, list[dict[str, str]]]) -> list[Example]:
        examples = self._assemble(chunks, results)
        log.info(self._safe(f"Q&A: {self.stats.describe()}"))
        return examples


def server_settings(config: dict[str, Any], keyless_local: bool = False) -> tuple[str, str, str]:
    """``(key, base_url, model)`` from resolved settings, checked (the generator's and the judge's).

    ``keyless_local``: a server other than Groq's (Ollama, vLLM, llama.cpp) may be used without a
    key, and ``key`` is then "". Raises ``ConfigError`` saying what to fix and where.
    """
    base_url = str(config.get("GROQ_BASE_URL") or DEFAULT_BASE_URL)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"GROQ_BASE_URL must start with http:// or https://, not {display_url(base_url)!r}.")
    model = str(config.get("GROQ_MODEL") or DEFAULT_MODEL)
    key = config.get("GROQ_API_KEY")
    key = key.strip() if isinstance(key, str) else ""
    if not key:
        if keyless_local and not is_groq(base_url):
            return "", base_url, model
        raise ConfigError(
            "GROQ_API_KEY is not set: put a line GROQ_API_KEY=your-key in a .env file in this folder "
            f"(or in {home_dir() / '.env'}), or set it in the environment.")
    if not key.isascii() or any(ch.isspace() or not ch.isprintable() for ch in key):
        # Checked here because httpx would fail later with a message about header encoding.
        raise ConfigError("GROQ_API_KEY holds spaces or characters that are not plain ASCII: "
                          "copy the key again into .env or the environment.")
    return key, base_url, model


def generator_from_config(
    config: dict[str, Any],
    pairs_per_chunk: int = 3,
    concurrency: int = 4,
    cache_dir: str | Path | None = None,
) -> OpenAICompatibleGenerator:
    """The generator for resolved settings (``Config().load_env_config()``).

    Raises ``ConfigError`` when ``GROQ_API_KEY`` is missing or unusable, saying where to put it.
    """
    key, base_url, model = server_settings(config)
    return OpenAICompatibleGenerator(key, base_url, model, pairs_per_chunk=pairs_per_chunk,
                                     concurrency=concurrency, cache_dir=cache_dir,
                                     timeout=request_timeout(config.get("GROQ_TIMEOUT")))


def request_timeout(value: Any) -> float:
    """GROQ_TIMEOUT as seconds to wait for one reply (REQUEST_TIMEOUT_S when unset); ConfigError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return REQUEST_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"GROQ_TIMEOUT must be a number of seconds, not {value!r}.") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"GROQ_TIMEOUT must be a number of seconds above 0, not {value!r}.")
    return seconds
