"""An LLM judge of the knowledge score (``llmcustoms eval RUN --judge``), beside the key-span match.

For every held-out question and every condition (base, tuned, open book) the judge is sent the
question, the reference answer and the model's answer, and asked whether the answer states the same
fact as the reference (a reply of ``{"correct": true}`` or ``{"correct": false}``). It talks to the
same chat-completions server as Q&A generation (``GROQ_API_KEY``, ``GROQ_BASE_URL``, ``GROQ_MODEL``)
and the same retry policy (``llmcustoms.qa.chat_server.ChatServerClient``).

It sends the user's text to that server, so it runs only when asked (``--judge`` is the consent), and
it never fails the evaluation: ``apply_judge`` either fills ``KnowledgeReport.judge`` or sets
``KnowledgeReport.judge_error`` to one sentence saying why there is no judge score.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx

from llmcustoms.errors import ConfigError
from llmcustoms.evaluation.knowledge import CONDITIONS, KnowledgeReport
from llmcustoms.qa.chat_server import ChatServerClient
from llmcustoms.qa.groq import DEFAULT_BASE_URL, DEFAULT_MODEL, server_settings
from llmcustoms.utils.logger import get_logger

SYSTEM_PROMPT = (
    "You grade answers to questions against a reference answer. An answer is correct when it states the "
    "same fact as the reference answer (other words are fine; a different or missing name, number, date "
    "or place is not). Reply with one JSON object and nothing else: {\"correct\": true} or "
    "{\"correct\": false}."
)
USER_PROMPT = (
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Answer to grade: {answer}\n\n"
    "Does the answer to grade state the same fact as the reference answer? "
    "Reply {{\"correct\": true}} or {{\"correct\": false}}."
)
#: Share of verdicts that may be missing (unparsable replies, requests that failed) before the
#: judge score is withheld: a score over a few answers would not be the score of the whole set.
MISSING_TOLERANCE = 0.1
_TRUE = frozenset({"true", "yes", "correct", "right"})
_FALSE = frozenset({"false", "no", "incorrect", "wrong"})
log = get_logger("llmcustoms.evaluation.judge")


class JudgeUnavailable(Exception):
    """The judge cannot give a score; the message is the one sentence shown as ``judge_error``."""


def parse_verdict(content: Any) -> bool | None:
    """True/False from a judge reply (JSON ``{"correct": …}``, fenced or not, or a bare yes/no); None if neither."""
    if not isinstance(content, str) or not content.strip():
        return None
    text = content.strip()
    fenced = re.match(r"^```[a-zA-Z]*\s*(.*?)\s*```$", text, re.S)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start:end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            value = data.get("correct", data.get("verdict"))
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            return None
    # Servers without JSON mode sometimes answer in one word.
    words = re.findall(r"[a-z]+", text.lower())
    if len(words) <= 2 and words and words[0] in _TRUE | _FALSE:
        return words[0] in _TRUE
    return None


@dataclass
class _Verdict:
    value: bool | None  # None: no verdict (unparsable twice, or failed after retries)
    reason: str = ""
    failed: bool = False  # the request failed (not merely an unparsable reply)


#: Seconds to wait for a connection to open (the judge has no knob for it).
CONNECT_TIMEOUT_S = 10.0


def _verdict_or_raise(content: Any) -> bool:
    """``parse_verdict`` for ``ChatServerClient._exchange``: ValueError when the reply holds no verdict."""
    verdict = parse_verdict(content)
    if verdict is None:
        raise ValueError("no verdict")
    return verdict


class Judge(ChatServerClient):
    """Grades (question, reference, answer) triples through an OpenAI-compatible chat-completions server.

    Knobs other than the server are keyword arguments with production defaults; tests shrink the waits.
    The requests themselves, and their retry policy, are ``ChatServerClient``'s.
    """

    _log = log

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, model: str = DEFAULT_MODEL, *,
                 concurrency: int = 4, timeout: float = 30.0, max_retries: int = 2,
                 max_rate_limit_retries: int = 6, max_retry_after: float = 60.0, backoff_base: float = 1.0,
                 max_consecutive_failures: int = 3, missing_tolerance: float = MISSING_TOLERANCE) -> None:
        super().__init__(api_key, base_url, model, concurrency=max(1, concurrency), timeout=timeout,
                         connect_timeout=CONNECT_TIMEOUT_S, max_retries=max_retries,
                         max_rate_limit_retries=max_rate_limit_retries, max_retry_after=max_retry_after,
                         backoff_base=backoff_base)
        self.max_consecutive_failures = max_consecutive_failures
        self.missing_tolerance = missing_tolerance

    def __repr__(self) -> str:
        return f"Judge(model={self.model!r}, server={self.server!r})"

    def describe(self) -> str:
        """Where the text goes: 'judged by <model> at <host>'."""
        return f"judged by {self.model} at {self.host}"

    def messages_for(self, question: str, reference: str, answer: str) -> list[dict[str, str]]:
        """The chat messages sent for one triple."""
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": USER_PROMPT.format(question=question, reference=reference,
                                                               answer=answer.strip() or "(no answer)")}]

    # -- one triple, in a worker thread -------------------------------------------------------------

    def _ask(self, client: httpx.Client, triple: tuple[str, str, str]) -> _Verdict:
        """One verdict; JudgeUnavailable (every worker already stopped) when the server refuses outright."""
        outcome = self._exchange(client, self.messages_for(*triple), _verdict_or_raise, temperature=0,
                                 max_tokens=20, label="judge")
        if outcome.kind == "ok":
            return _Verdict(outcome.value)
        if outcome.kind == "unparsable":
            return _Verdict(None, outcome.reason)
        if outcome.kind == "failed":
            return _Verdict(None, outcome.reason, failed=True)
        if outcome.kind == "refused":
            raise JudgeUnavailable(f"the server at {self.server} refused the key (HTTP {outcome.status}); check "
                                   f"GROQ_API_KEY. The server said: {outcome.message}")
        if outcome.kind == "no_endpoint":
            raise JudgeUnavailable(f"the server at {self.server} has no model {self.model!r} or no "
                                   f"chat-completions endpoint (HTTP 404); check GROQ_BASE_URL and "
                                   f"GROQ_MODEL. The server said: {outcome.message}")
        # "stopped" (only after another worker's JudgeUnavailable, which is reported); the judge has no
        # give_up_retry_after, so "rate_limited_too_long" never comes.
        return _Verdict(None, "stopped")

    # -- many triples -----------------------------------------------------------------------------------

    def grade(self, triples: Sequence[tuple[str, str, str]],
              progress: Callable[[int, int], None] | None = None) -> list[bool | None]:
        """A verdict per triple (None where none came back within the tolerance).

        Raises ``JudgeUnavailable`` when the server refuses the key or the model, when requests keep
        failing, or when more than ``missing_tolerance`` of the verdicts are missing.
        """
        unique = list(dict.fromkeys(triples))  # the same answer to the same question is asked once
        verdicts: dict[tuple[str, str, str], _Verdict] = {}
        if not unique:
            return []
        self._stop.clear()
        self._pause_until = 0.0
        client = self._client()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(unique)), thread_name_prefix="llmcustoms-judge")
        futures: dict[Future[_Verdict], tuple[str, str, str]] = {pool.submit(self._ask, client, t): t for t in unique}
        pending = set(futures)
        failures_in_a_row = 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                # A worker's JudgeUnavailable first: it is the reason, not the answers stopped after it.
                for future in sorted(finished, key=lambda f: f.exception() is None):
                    verdict = future.result()  # JudgeUnavailable from a worker stops here
                    verdicts[futures[future]] = verdict
                    failures_in_a_row = failures_in_a_row + 1 if verdict.failed else 0
                    if failures_in_a_row >= self.max_consecutive_failures:
                        raise JudgeUnavailable(f"{failures_in_a_row} requests in a row to {self.server} failed; "
                                               f"the last: {verdict.reason}")
                    if progress is not None:
                        progress(len(verdicts), len(unique))
        finally:
            self._stop.set()  # workers still waiting give up; requests in flight finish
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            client.close()
        missing = [v for v in verdicts.values() if v.value is None]
        if len(missing) > self.missing_tolerance * len(unique):
            raise JudgeUnavailable(f"{len(missing)} of {len(unique)} answers got no verdict from {self.server} "
                                   f"(the last: {missing[-1].reason})")
        return [verdicts[t].value for t in triples]


def judge_from_config(config: dict[str, Any], **options: Any) -> Judge:
    """The judge for resolved settings (``Config().load_env_config()``).

    Raises ``ConfigError`` saying how to set ``GROQ_API_KEY`` / ``GROQ_BASE_URL`` when none is usable.
    A server other than Groq's (``GROQ_BASE_URL=http://host:port/v1``) may be used without a key.
    """
    try:
        key, base_url, model = server_settings(config, keyless_local=True)
    except ConfigError as error:
        raise ConfigError(f"{str(error).rstrip('.')}; or, for a local OpenAI-compatible server, set "
                          "GROQ_BASE_URL=http://host:port/v1 and GROQ_MODEL.") from None
    return Judge(key, base_url, model, **options)


def apply_judge(report: KnowledgeReport, judge: Judge | None, unavailable: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> KnowledgeReport:
    """Add the judge's verdicts to ``report`` (rows' ``<condition>_judge``, ``report.judge``).

    Never raises for a failing judge: ``report.judge_error`` then says why, and the match score stands.
    ``unavailable``: why no judge could be made (e.g. no key); nothing is sent.
    """
    if judge is None:
        if unavailable:
            report.judge, report.judge_error = None, unavailable
        return report
    conditions = [c for c in CONDITIONS if report.rows and c in report.rows[0]]
    if not conditions:
        report.judge, report.judge_error = None, "there were no answers to judge"
        return report
    triples = [(row["question"], row.get("reference") or row.get("span", ""), str(row[c]))
               for c in conditions for row in report.rows]
    started = time.time()
    try:
        verdicts = judge.grade(triples, progress)
    except JudgeUnavailable as error:
        report.judge, report.judge_error = None, str(error)
        log.warning(f"no judge score: {error}")
        return report
    shares: dict[str, Any] = {}
    for index, condition in enumerate(conditions):
        mine = verdicts[index * len(report.rows):(index + 1) * len(report.rows)]
        for row, verdict in zip(report.rows, mine, strict=True):
            row[f"{condition}_judge"] = verdict
        given = [v for v in mine if v is not None]
        shares[condition] = sum(given) / len(given) if given else None
    report.judge = {**{c: shares.get(c) for c in CONDITIONS}, "model": judge.model, "server": judge.server,
                    "judged": sum(1 for v in verdicts if v is not None), "missing": sum(1 for v in verdicts if v is None),
                    "seconds": round(time.time() - started, 1)}
    report.judge_error = None
    return report
