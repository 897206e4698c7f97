"""The Q&A generator against a real HTTP server on 127.0.0.1 (tests/openai_stub_server.py).

Nothing is mocked between the generator and the socket: retries, waits, the cache and the key's
safety are exercised as they run for a user. Waits are shrunk (timeouts of a fraction of a second,
``retry-after: 1``) so the file runs in a few seconds. The last test scans every file written by
this session's tests for the fake key.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import time
from pathlib import Path

import pytest

from llmcustoms.data.types import Chunk
from llmcustoms.errors import ConfigError, GeneratorError
from llmcustoms.paths import qa_cache_dir
from llmcustoms.qa.chat_server import chat_completions_url, display_url
from llmcustoms.qa.cost import GROQ_FREE_TIER
from llmcustoms.qa.generator import QAGenerator
from llmcustoms.qa.groq import OpenAICompatibleGenerator, generator_from_config
from llmcustoms.qa.grounding import content_words, grounding_score, is_grounded, normalise_question
from llmcustoms.qa.prompts import PROMPT_VERSION
from llmcustoms.qa.replies import parse_pairs
from llmcustoms.utils.config import Config
from tests.helpers.openai_stub_server import Received, Reply, StubServer, completion, pairs_reply

# Not shaped like the "gsk_" + 8 alphanumerics that logger.scrub catches (the underscore breaks it),
# so these tests prove the generator's own scrubbing, not the generic pattern's.
FAKE_KEY = "gsk_test_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))

CHUNKS = [
    Chunk("The Eiffel Tower was completed in 1889 for the World's Fair in Paris. "
          "Gustave Eiffel's company designed and built the iron lattice tower.", "paris.txt:0"),
    Chunk("Honeybees communicate the location of flowers with a waggle dance. "
          "The angle of the dance shows the direction relative to the sun.", "bees.txt:0"),
    Chunk("The Amazon river discharges more water than any other river on Earth. "
          "Its basin covers about seven million square kilometres.", "amazon.txt:0"),
    Chunk("Copper is an excellent conductor of electricity and heat. "
          "Electrical wiring in homes is usually made of copper.", "copper.txt:0"),
    Chunk("The Great Barrier Reef lies off the coast of Queensland in Australia. "
          "It is the largest coral reef system in the world.", "reef.txt:0"),
    Chunk("Mount Kilimanjaro in Tanzania is the highest mountain in Africa. "
          "Its summit, Uhuru Peak, rises 5895 metres above sea level.", "kili.txt:0"),
]


@pytest.fixture(autouse=True)
def debug_log_file(tmp_path):
    """Every record of the 'llmcustoms' loggers, DEBUG included, goes to a file the key scan reads."""
    logger = logging.getLogger("llmcustoms")
    handler = logging.FileHandler(tmp_path / "debug.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield tmp_path / "debug.log"
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    handler.close()


@pytest.fixture
def server():
    with StubServer() as stub:
        yield stub


def make_generator(server: StubServer, **kwargs) -> OpenAICompatibleGenerator:
    """A generator aimed at the stub, with waits shrunk for tests."""
    options = dict(pairs_per_chunk=3, concurrency=2, timeout=2.0, backoff_base=0.01)
    options.update(kwargs)
    return OpenAICompatibleGenerator(FAKE_KEY, server.base_url, "stub-model", **options)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "test"}}, headers or {})


# -- the happy path ---------------------------------------------------------------------------------


def test_happy_path_sends_each_chunk_once_and_returns_grounded_examples(server):
    gen = make_generator(server)
    assert isinstance(gen, QAGenerator)
    seen: list[tuple[int, int]] = []
    examples = gen.generate(CHUNKS, progress=lambda done, total: seen.append((done, total)))

    assert len(server.requests) == len(CHUNKS)
    assert sorted(r.chunk for r in server.requests) == sorted(c.text for c in CHUNKS)
    first = server.requests[0]
    assert first.path == "/openai/v1/chat/completions"  # Groq's SDK meaning of the base URL
    assert first.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert first.body["model"] == "stub-model"
    assert first.body["response_format"] == {"type": "json_object"}
    assert "JSON" in first.body["messages"][0]["content"]  # JSON mode needs the word in the prompt

    assert len(examples) == 2 * len(CHUNKS)  # the stub answers with each chunk's two sentences
    assert all(e.kind == "generated" for e in examples)
    assert [e.source for e in examples[:2]] == ["paris.txt:0", "paris.txt:0"]  # chunk order kept
    assert examples[0].messages[0]["role"] == "user" and examples[0].messages[1]["role"] == "assistant"
    assert examples[0].answer.startswith("The Eiffel Tower was completed in 1889")
    assert seen[0] == (0, len(CHUNKS)) and seen[-1] == (len(CHUNKS), len(CHUNKS))
    stats = gen.stats
    assert (stats.sent, stats.cached, stats.pairs_kept, stats.failed) == (len(CHUNKS), 0, 12, 0)
    assert FAKE_KEY not in gen.name and FAKE_KEY not in repr(gen)
    assert gen.name == f"openai-compatible:stub-model@127.0.0.1:{server.httpd.server_address[1]}"


def test_rerun_is_served_from_the_cache_and_sends_nothing(server):
    first = make_generator(server).generate(CHUNKS)
    assert len(server.requests) == len(CHUNKS)

    gen = make_generator(server)
    plan = gen.plan(CHUNKS)
    assert (plan.chunks, plan.cached, plan.to_send) == (len(CHUNKS), len(CHUNKS), 0)
    assert "nothing to send" in plan.describe()
    again = gen.generate(CHUNKS)
    assert len(server.requests) == len(CHUNKS)  # not one more
    assert [e.to_dict() for e in again] == [e.to_dict() for e in first]
    assert gen.stats.cached == len(CHUNKS) and gen.stats.sent == 0

    files = list(qa_cache_dir().rglob("*.json"))
    assert len(files) == len(CHUNKS)
    entry = json.loads(files[0].read_text())
    assert entry["prompt_version"] == PROMPT_VERSION and entry["model"] == "stub-model"
    assert not list(qa_cache_dir().rglob("*.tmp"))  # atomic writes leave no temporary file

    # Another model (or prompt version, or server) is another key: nothing stale is served.
    other = OpenAICompatibleGenerator(FAKE_KEY, server.base_url, "other-model", cache_dir=qa_cache_dir())
    assert other.plan(CHUNKS).to_send == len(CHUNKS)


def test_the_same_chunk_text_twice_is_sent_once(server):
    chunks = [CHUNKS[0], Chunk(CHUNKS[0].text, "copy.txt:0"), CHUNKS[1]]
    gen = make_generator(server)
    assert gen.plan(chunks).to_send == 2
    examples = gen.generate(chunks)
    assert len(server.requests) == 2
    assert len(examples) == 4


# -- server trouble -------------------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(server):
    server.push(error(429, "Rate limit reached for requests", {"retry-after": "1"}))
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:1])

    assert len(server.requests) == 2
    waited = server.requests[1].t - server.requests[0].t
    assert waited >= 0.9, f"retry-after: 1 was not honoured (retried after {waited:.2f} s)"
    assert len(examples) == 2
    assert gen.stats.rate_limited == 1 and gen.stats.retries == 1 and gen.stats.failed == 0


def test_a_retry_after_of_hours_stops_the_run_at_once(server):
    server.push(error(429, "Rate limit reached for requests per day", {"retry-after": "7200"}))
    gen = make_generator(server, concurrency=1)
    with pytest.raises(GeneratorError, match="rate limiting"):
        gen.generate(CHUNKS[:3])
    assert len(server.requests) == 1


def test_500_then_success(server):
    server.push(error(500, "Internal server error"), error(503, "Service unavailable"))
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:1])
    assert len(server.requests) == 3
    assert len(examples) == 2 and gen.stats.retries == 2 and gen.stats.failed == 0


def test_timeout_then_success(server):
    server.push(Reply(delay=2.0, body=completion('{"pairs": []}')))
    gen = make_generator(server, concurrency=1, timeout=0.3)
    start = time.monotonic()
    examples = gen.generate(CHUNKS[:1])
    assert time.monotonic() - start < 1.5  # the client gave up on the slow reply, it did not wait it out
    assert len(server.requests) == 2 and len(examples) == 2
    assert gen.stats.retries == 1 and gen.stats.failed == 0


def test_timeouts_past_the_retries_count_the_chunk_as_failed(server):
    slow = Reply(delay=1.0, body=completion('{"pairs": []}'))
    server.push(slow, slow)
    gen = make_generator(server, concurrency=1, timeout=0.25, max_retries=1)
    examples = gen.generate(CHUNKS[:2])
    assert gen.stats.failed == 1 and gen.stats.sent == 2
    assert [e.source for e in examples] == ["bees.txt:0", "bees.txt:0"]
    assert gen.plan(CHUNKS[:2]).to_send == 1  # the failed chunk is not cached: a rerun tries it again


def test_401_stops_at_once_with_the_key_was_refused(server, debug_log_file):
    # Some servers echo the key they refused; it must not travel on into our message.
    server.push(error(401, f"Invalid API Key: {FAKE_KEY}"))
    gen = make_generator(server, concurrency=1)
    with pytest.raises(GeneratorError, match="the key was refused") as caught:
        gen.generate(CHUNKS)
    assert FAKE_KEY not in str(caught.value)
    assert len(server.requests) == 1  # no retry, and the other chunks were never sent


def test_403_is_a_refused_key_too(server):
    server.push(error(403, "Forbidden"))
    with pytest.raises(GeneratorError, match="the key was refused"):
        make_generator(server, concurrency=1).generate(CHUNKS[:2])


def test_404_names_the_setting_to_fix(server):
    server.push(error(404, "The model `stub-model` does not exist"))
    with pytest.raises(GeneratorError, match="GROQ_BASE_URL"):
        make_generator(server, concurrency=1).generate(CHUNKS[:2])


def test_a_run_of_failures_stops_instead_of_grinding_through_every_chunk(server):
    server.default = lambda request: error(500, "down")
    gen = make_generator(server, concurrency=1, max_retries=0, max_consecutive_failures=3)
    with pytest.raises(GeneratorError, match="3 chunks in a row"):
        gen.generate(CHUNKS)
    assert 3 <= len(server.requests) <= 4  # three failures, plus at most the one already in flight


def test_content_that_is_not_json_is_retried_once_then_skipped_and_counted(server):
    not_json = Reply(body=completion("Sure! Here are some questions about the Eiffel Tower."))
    server.push(not_json, not_json)
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:2])
    assert len(server.requests) == 3  # chunk 1 twice, chunk 2 once
    assert server.requests[0].chunk == server.requests[1].chunk == CHUNKS[0].text
    assert gen.stats.malformed_skipped == 1 and gen.stats.failed == 0
    assert {e.source for e in examples} == {"bees.txt:0"}
    assert gen.plan(CHUNKS[:2]).to_send == 1  # skipped, not cached


def test_content_that_is_not_json_once_is_recovered_by_the_retry(server):
    server.push(Reply(body=completion('{"pairs": [{"question": "Truncated')))
    gen = make_generator(server, concurrency=1)
    assert len(gen.generate(CHUNKS[:1])) == 2
    assert gen.stats.malformed_skipped == 0 and len(server.requests) == 2


def test_groq_json_validate_failed_counts_as_malformed(server):
    failed = error(400, "Failed to generate JSON. Please adjust your prompt.")
    server.push(failed, failed)
    gen = make_generator(server, concurrency=1)
    assert gen.generate(CHUNKS[:1]) == []
    assert gen.stats.malformed_skipped == 1 and len(server.requests) == 2


def test_an_empty_pairs_list_is_fine_counted_and_cached(server):
    server.push(pairs_reply([]))
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:2])
    assert {e.source for e in examples} == {"bees.txt:0"}
    assert gen.stats.empty == 1 and gen.stats.malformed_skipped == 0 and gen.stats.failed == 0
    assert gen.plan(CHUNKS[:2]).to_send == 0  # "nothing to ask here" is an answer worth keeping


def test_a_server_without_json_mode_is_asked_in_the_prompt_only(server):
    server.push(error(400, "Unrecognized request argument supplied: response_format"))
    fenced = '```json\n{"pairs": [{"question": "When was the Eiffel Tower completed?", ' \
             '"answer": "The Eiffel Tower was completed in 1889."}]}\n```'
    server.push(Reply(body=completion(fenced)))
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:1])
    assert "response_format" not in server.requests[1].body
    assert [e.prompt for e in examples] == ["When was the Eiffel Tower completed?"]


# -- grounding and duplicates -------------------------------------------------------------------------


def test_ungrounded_answers_and_repeated_questions_are_dropped_and_counted(server):
    server.push(pairs_reply([
        ("When was the Eiffel Tower completed?", "The Eiffel Tower was completed in 1889, for the World's Fair."),
        ("What do bananas contain?", "Bananas are yellow fruits rich in potassium and vitamin B6."),
        ("When was the Eiffel tower completed", "It was completed in 1889."),
        ("Who built the tower?", "Gustave Eiffel's company designed and built it."),
        ("", "An answer without a question."),
    ]))
    gen = make_generator(server, concurrency=1)
    examples = gen.generate(CHUNKS[:1])
    assert [e.prompt for e in examples] == ["When was the Eiffel Tower completed?", "Who built the tower?"]
    stats = gen.stats
    assert (stats.dropped_ungrounded, stats.duplicates, stats.invalid_pairs) == (1, 1, 1)
    assert "dropped 1 ungrounded and 1 duplicates" in stats.describe()


def test_grounding_score_on_words_stems_and_unspaced_scripts():
    chunk = "The Eiffel Tower was completed in 1889 for the World's Fair in Paris."
    assert is_grounded("It was completed in 1889.", chunk)
    assert is_grounded("Its completion came in 1889 for the Worlds Fair.", chunk)  # stems and possessives
    assert not is_grounded("The tower was finished in 1901 by Napoleon.", chunk)
    assert grounding_score("Yes.", chunk) == 0.0  # nothing to check: not worth training on
    assert is_grounded("埃菲尔铁塔建于1889年。", "埃菲尔铁塔于1889年为世界博览会建成。")
    assert "the" not in content_words("the tower") and "tower" in content_words("the tower")
    assert normalise_question("  When was it BUILT?? ") == normalise_question("when was it built")


def test_parse_pairs_is_lenient_about_layout_and_strict_about_content():
    assert parse_pairs('{"pairs": [{"question": "Q?", "answer": "A."}]}') == ([{"question": "Q?", "answer": "A."}], 0)
    assert parse_pairs('Here you go: {"items": [{"q": "Q?", "a": "A."}, {"q": "no answer"}]} Enjoy!') == (
        [{"question": "Q?", "answer": "A."}], 1)
    assert parse_pairs('[{"question": "Q?", "answer": "A."}]')[0] == [{"question": "Q?", "answer": "A."}]
    for bad in ("", "no json here", '{"pairs": "none"}', "42"):
        with pytest.raises(ValueError):
            parse_pairs(bad)


# -- interruption -----------------------------------------------------------------------------------------


def test_an_interrupted_run_keeps_what_it_made_and_a_rerun_sends_only_the_rest(server):
    def stop_after_two(done: int, total: int) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    gen = make_generator(server, concurrency=1)
    with pytest.raises(KeyboardInterrupt):
        gen.generate(CHUNKS, progress=stop_after_two)
    first_run = [r.chunk for r in server.requests]
    assert 2 <= len(first_run) < len(CHUNKS)
    assert gen.stats.interrupted and len(gen.partial_examples) >= 4

    resumed = make_generator(server, concurrency=1)
    assert resumed.plan(CHUNKS).to_send == len(CHUNKS) - len(first_run)
    examples = resumed.generate(CHUNKS)
    second_run = [r.chunk for r in server.requests[len(first_run):]]
    assert not set(first_run) & set(second_run)  # nothing finished is sent again
    assert sorted(first_run + second_run) == sorted(c.text for c in CHUNKS)
    assert len(examples) == 2 * len(CHUNKS)


# -- the plan, settings and URLs -------------------------------------------------------------------------


def test_plan_estimates_tokens_and_time_at_groq_rate_limits_without_sending():
    gen = OpenAICompatibleGenerator(FAKE_KEY, "https://api.groq.com", "llama-3.3-70b-versatile")
    chunks = [Chunk(c.text * 20, f"big.txt:{i}") for i, c in enumerate(CHUNKS)] * 10
    chunks = [Chunk(c.text + f" Part {i}.", c.source) for i, c in enumerate(chunks)]
    plan = gen.plan(chunks)
    assert gen.name == "groq:llama-3.3-70b-versatile"
    assert (plan.chunks, plan.cached, plan.to_send) == (60, 0, 60)
    assert plan.tokens_in > 60 * 600 and plan.tokens_out >= 60 * 3 * 50
    assert plan.rate_limits == GROQ_FREE_TIER
    assert plan.seconds >= (plan.tokens_in + plan.tokens_out) / 12_000 * 60  # the token limit binds
    text = plan.describe()
    assert "60 to send" in text and "rate limits" in text and "Groq's free tier" in text
    assert FAKE_KEY not in text and FAKE_KEY not in json.dumps(plan.to_dict())


def test_generator_from_config_reaches_the_server_named_by_groq_base_url(server, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", server.base_url)
    monkeypatch.setenv("GROQ_MODEL", "stub-model")
    gen = generator_from_config(Config().load_env_config(), pairs_per_chunk=2, concurrency=2)
    examples = gen.generate(CHUNKS[:2])
    assert len(server.requests) == 2 and len(examples) == 4
    assert server.requests[0].body["model"] == "stub-model"
    assert "2 question-and-answer pairs" in server.requests[0].body["messages"][1]["content"]
    assert gen.cache.root == qa_cache_dir()


def test_a_v1_base_url_reaches_openai_layout_servers(server):
    gen = OpenAICompatibleGenerator(FAKE_KEY, server.base_url + "/v1", "llama3.2", backoff_base=0.01)
    assert len(gen.generate(CHUNKS[:1])) == 2
    assert server.requests[0].path == "/v1/chat/completions"


def test_missing_key_is_a_config_error_saying_where_to_put_it():
    with pytest.raises(ConfigError, match=r"\.env.*environment"):
        generator_from_config(Config().load_env_config())
    with pytest.raises(ConfigError, match="ASCII"):
        generator_from_config({"GROQ_API_KEY": "gsk abc def"})


def test_urls():
    assert chat_completions_url("https://api.groq.com") == "https://api.groq.com/openai/v1/chat/completions"
    assert chat_completions_url("https://proxy.example/groq/") == "https://proxy.example/groq/openai/v1/chat/completions"
    assert chat_completions_url("http://localhost:11434/v1") == "http://localhost:11434/v1/chat/completions"
    assert chat_completions_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    assert display_url("https://user:secret@proxy.example:8443/base/?token=abc") == "https://proxy.example:8443/base"


def test_received_chunk_helper_matches_the_prompt_layout(server):
    make_generator(server).generate(CHUNKS[:1])
    assert isinstance(server.requests[0], Received) and server.requests[0].chunk == CHUNKS[0].text


# -- the key never lands on disk (keep this test last) ----------------------------------------------------


def test_the_key_is_in_no_file_any_test_wrote(tmp_path_factory):
    """Every file under this session's temporary folders: caches, homes, logs, working dirs."""
    root = Path(tmp_path_factory.getbasetemp())
    # Model weights from other test files are skipped: hundreds of MB, and nothing of ours writes there.
    files = [p for p in root.rglob("*") if p.is_file() and p.stat().st_size < 50 * 2**20]
    assert any(p.suffix == ".json" and "qa-cache" in p.parts for p in files), "no cache file was written"
    assert any(p.name == "debug.log" and p.stat().st_size > 0 for p in files), "no log was written"
    needle = FAKE_KEY.encode()
    leaked = [str(p) for p in files if needle in p.read_bytes()]
    assert not leaked, f"the API key was written to {leaked}"
