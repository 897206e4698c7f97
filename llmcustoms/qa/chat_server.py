"""One request to an OpenAI-compatible chat-completions server, with the retry policy written once.

Q&A generation (``llmcustoms.qa.groq``) and the LLM judge (``llmcustoms.evaluation.judge``) talk
to the same kind of server in the same way. :class:`ChatServerClient` holds what they share: the
endpoint, the HTTP client, key scrubbing, the pause every worker honours after a 429, backoff, and
``_exchange``, which turns one request into an :class:`Outcome`. The policy, in order:

* after a 429 every worker waits (``Retry-After``, capped at ``max_retry_after``; backoff without
  one); a Retry-After beyond ``give_up_retry_after`` (a daily limit) is not waited for at all;
* timeouts, transport errors, 408, 409 and 5xx are retried ``max_retries`` times with exponential
  backoff and jitter (a 503's Retry-After is honoured);
* a 400 about ``response_format`` turns JSON mode off for good and asks again (the prompt alone
  asks for JSON);
* 401/403 (refused key) and 404 (no endpoint or model) are fatal: every worker is stopped;
* a reply that does not parse is asked again once (models often get it right the second time).

Subclasses keep their own messages: the fatal outcomes come back typed, and they raise their own
error. Small hooks cover the rest (``_count``, ``_timeout_reason``, ``_on_reply`` …).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from llmcustoms.utils.logger import get_logger, scrub

#: What Groq's SDK appends to ``GROQ_BASE_URL``.
GROQ_CHAT_PATH = "/openai/v1/chat/completions"
#: The longest backoff between two tries, however many tries came before.
MAX_BACKOFF_S = 30.0
#: What an unparsable reply is called (callers may add the parser's or server's words in brackets).
NOT_THE_JSON_ASKED_FOR = "the reply was not the JSON asked for"


def chat_completions_url(base_url: str) -> str:
    """The endpoint for ``base_url``: Groq's SDK meaning, plus the OpenAI ``.../v1`` layout."""
    base = base_url.strip().rstrip("/")
    path = urlsplit(base).path.rstrip("/")
    if path.endswith("/chat/completions"):
        return base  # the whole endpoint was given: use it as is
    if path.endswith("/v1"):
        return base + "/chat/completions"  # Ollama, vLLM, llama.cpp: http://host:port/v1
    return base + GROQ_CHAT_PATH


def display_url(url: str) -> str:
    """``url`` without user, password, query or fragment: safe to show, log and hash."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait a 429/503 asks for: ``retry-after-ms``, ``retry-after`` seconds or an HTTP date."""
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def server_message(response: httpx.Response) -> str:
    """The server's own error sentence, short (the caller scrubs it)."""
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else error
        text = str(message if message is not None else data)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


OutcomeKind = Literal["ok", "unparsable", "failed", "stopped", "refused", "no_endpoint", "rate_limited_too_long"]
#: Outcomes after which no other request should be sent: ``_exchange`` has already stopped the workers.
FATAL: frozenset[OutcomeKind] = frozenset({"refused", "no_endpoint", "rate_limited_too_long"})


@dataclass
class Outcome:
    """What became of one request, retries included.

    ``ok``: ``value`` is the parsed reply. ``unparsable``: asked twice, never the JSON asked for
    (``detail`` says what was wrong). ``failed``: gave up (retries spent, still rate limited, or an
    HTTP status not worth retrying); ``reason`` says why. ``stopped``: the run was stopped while
    this request waited. Fatal (see ``FATAL``): ``refused`` (401/403), ``no_endpoint`` (404),
    ``rate_limited_too_long`` (Retry-After beyond ``give_up_retry_after``), with ``status``,
    ``message`` (the server's, scrubbed) and ``retry_after``.
    """

    kind: OutcomeKind
    value: Any = None
    reason: str = ""
    detail: str = ""
    status: int = 0
    message: str = ""
    retry_after: float | None = None

    @property
    def fatal(self) -> bool:
        """True when the caller should raise its own error and stop the run."""
        return self.kind in FATAL


class ChatServerClient:
    """The shared half of a client of a chat-completions server: endpoint, HTTP client, retry policy.

    Subclasses call ``__init__`` with their knobs, ``_client()`` once per run and ``_exchange`` once
    per request (from worker threads). ``_stop`` and ``_pause_until`` are per run: reset them when
    a run starts.
    """

    #: Where the retry policy logs (subclasses set their own module's logger).
    _log: logging.Logger = get_logger("llmcustoms.qa.chat_server")

    def __init__(self, api_key: str, base_url: str, model: str, *, concurrency: int, timeout: float,
                 connect_timeout: float, max_retries: int, max_rate_limit_retries: int, max_retry_after: float,
                 give_up_retry_after: float = math.inf, backoff_base: float = 1.0, json_mode: bool = True) -> None:
        self._api_key = api_key.strip()
        self.base_url = base_url.strip().rstrip("/")
        self.url = chat_completions_url(self.base_url)
        self.server = display_url(self.base_url)
        self.host = urlsplit(self.url).netloc.rsplit("@", 1)[-1]
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.max_retry_after = max_retry_after
        self.give_up_retry_after = give_up_retry_after
        self.backoff_base = backoff_base
        self.json_mode = json_mode
        self._lock = threading.Lock()
        self._pause_until = 0.0  # monotonic time before which no worker sends (after a 429)
        self._stop = threading.Event()

    # -- safety and the HTTP client -----------------------------------------------------------------

    def _safe(self, text: str) -> str:
        """``text`` with this client's key (and anything key-shaped) removed."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return scrub(text)

    def _client(self) -> httpx.Client:
        """One HTTP client for a run, shared by the workers (``concurrency`` connections)."""
        timeout = httpx.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout))
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        headers = {"Content-Type": "application/json", "User-Agent": "llmcustoms"}
        if self._api_key:  # a local server may be used without a key
            headers["Authorization"] = f"Bearer {self._api_key}"
        return httpx.Client(headers=headers, timeout=timeout, limits=limits)

    # -- hooks ------------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        """Called with "requests", "retries" or "rate_limited" as they happen; counts nothing here."""

    def _on_reply(self) -> None:
        """Called whenever the server answered (any status)."""

    def _timeout_reason(self, exc: httpx.TimeoutException) -> str:
        """Why a timed-out request failed (may raise to stop the whole run)."""
        return f"the server did not answer within {self.timeout:g} s"

    def _transport_reason(self, exc: httpx.TransportError) -> str:
        """Why a request that never reached the server failed."""
        return f"could not reach {self.server} ({type(exc).__name__})"

    def _is_unparsable_error(self, status: int, message: str) -> bool:
        """True for an error status that means "the reply was not JSON" (retried like an unparsable reply)."""
        return False

    def _json_mode_refused(self) -> None:
        """Called once JSON mode was turned off because the server refused ``response_format``."""

    # -- waiting ------------------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the run is stopped; True when the wait ran its course."""
        return not self._stop.wait(max(0.0, seconds))

    def _wait_for_pause(self) -> bool:
        """Hold this worker while the server has asked everyone to wait; False once the run is stopped."""
        while True:
            with self._lock:
                remaining = self._pause_until - time.monotonic()
            if remaining <= 0:
                return not self._stop.is_set()
            if not self._sleep(remaining):
                return False

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter so that workers that failed together do not retry together.
        return min(MAX_BACKOFF_S, self.backoff_base * 2 ** (attempt - 1)) * (0.75 + 0.5 * random.random())

    # -- one request --------------------------------------------------------------------------------

    def _exchange(self, client: httpx.Client, messages: list[dict[str, str]], parse: Callable[[Any], Any], *,
                  temperature: float, max_tokens: int, label: str) -> Outcome:
        """Send ``messages`` until a reply parses, the request is given up, or the run stops.

        ``parse(content)`` turns the reply's content into the value of an ``ok`` outcome, raising
        ``ValueError`` (or ``KeyError``/``IndexError``/``TypeError``) when it is not what was asked.
        ``label`` starts the debug lines about retries. Exceptions from hooks stop every worker and
        propagate; so do fatal outcomes (the workers are stopped before it is returned).
        """
        try:
            outcome = self._attempts(client, messages, parse, temperature=temperature, max_tokens=max_tokens,
                                     label=label)
        except BaseException:
            self._stop.set()  # before the other workers pick up another request: one refusal costs one request
            raise
        if outcome.fatal:
            self._stop.set()
        return outcome

    def _attempts(self, client: httpx.Client, messages: list[dict[str, str]], parse: Callable[[Any], Any], *,
                  temperature: float, max_tokens: int, label: str) -> Outcome:
        transient = unparsable = limited = 0
        while True:
            if not self._wait_for_pause():
                return Outcome("stopped", reason="stopped")
            self._count("requests")
            body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature,
                                    "max_tokens": max_tokens}
            if self.json_mode:
                body["response_format"] = {"type": "json_object"}
            retry_wait: float | None = None
            try:
                response = client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                reason = self._timeout_reason(exc)
            except httpx.TransportError as exc:
                reason = self._transport_reason(exc)
            else:
                self._on_reply()
                status = response.status_code
                ok = 200 <= status < 300
                message = "" if ok else self._safe(server_message(response))
                detail: str | None = None  # set when the reply was not the JSON asked for
                if ok:
                    try:
                        return Outcome("ok", value=parse(response.json()["choices"][0]["message"]["content"]))
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        detail = str(exc)
                elif self._is_unparsable_error(status, message):
                    detail = message
                if detail is not None:
                    unparsable += 1
                    if unparsable > 1:
                        return Outcome("unparsable", reason=NOT_THE_JSON_ASKED_FOR, detail=detail)
                    self._count("retries")
                    continue  # models often get it right the second time
                if status in (401, 403):
                    return Outcome("refused", status=status, message=message)
                if status == 404:
                    return Outcome("no_endpoint", status=status, message=message)
                if status == 400 and self.json_mode and "response_format" in message.lower():
                    self.json_mode = False  # a server without JSON mode: the prompt alone asks for JSON
                    self._json_mode_refused()
                    continue
                if status == 429:
                    self._count("rate_limited")
                    limited += 1
                    retry_wait = retry_after_seconds(response)
                    if retry_wait is not None and retry_wait > self.give_up_retry_after:
                        return Outcome("rate_limited_too_long", status=status, message=message, retry_after=retry_wait)
                    if limited > self.max_rate_limit_retries:
                        return Outcome("failed", reason=f"still rate limited after {limited} tries ({message})")
                    wait_s = min(retry_wait if retry_wait is not None else self._backoff(limited), self.max_retry_after)
                    with self._lock:  # every worker waits, not only this one: the limit is shared
                        self._pause_until = max(self._pause_until, time.monotonic() + wait_s)
                    self._log.debug(f"rate limited by {self.server}; waiting {wait_s:.1f} s")
                    self._count("retries")
                    continue
                if status in (408, 409) or status >= 500:
                    reason = f"HTTP {status} ({message})"
                    retry_wait = retry_after_seconds(response) if status == 503 else None
                else:
                    return Outcome("failed", reason=f"HTTP {status} ({message})")
            # A timeout, a dropped connection or a server error: back off and try again, a few times.
            transient += 1
            if transient > self.max_retries:
                return Outcome("failed", reason=self._safe(reason))
            self._count("retries")
            delay = min(retry_wait, self.max_retry_after) if retry_wait is not None else self._backoff(transient)
            self._log.debug(self._safe(f"{label}: {reason}; retrying in {delay:.1f} s"))
            if not self._sleep(delay):
                return Outcome("stopped", reason="stopped")
