"""The LLM judge of the knowledge score (``llmcustoms eval RUN --judge``, issue 12).

The judge talks to a real HTTP server on 127.0.0.1 (tests/openai_stub_server.py); nothing is mocked
between it and the socket. Reports are built from hand-written rows (no model needed) except in the
last test, which drives the CLI on a tiny trained run.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from llmcustoms.errors import ConfigError
from llmcustoms.evaluation.judge import Judge, apply_judge, judge_from_config, parse_verdict
from llmcustoms.evaluation.knowledge import KnowledgeReport
from tests.helpers.openai_stub_server import Received, Reply, StubServer, completion

FAKE_KEY = "gsk_test_judge_0123456789abcdefghijkl"
ANSWER_RE = re.compile(r"Answer to grade: (.*)")

# (question, reference, span, base answer, tuned answer, open-book answer)
ROWS = [
    ("When was Brisca founded?", "Brisca was founded in 1612.", "1612",
     "Brisca was founded long ago.", "It was founded in 1612.", "In the year 1612."),
    ("Who founded Brisca?", "Admiral Noor Lethe founded Brisca.", "Noor Lethe",
     "A king.", "Admiral Noor Lethe.", "Noor Lethe founded it."),
    ("What is the capital of Brisca?", "The capital of Brisca is Calloway.", "Calloway",
     "Paris.", "The capital is Gullmouth.", "Calloway is the capital."),
    ("How many arches has the Calloway bridge?", "The Calloway bridge has seven arches.", "seven",
     "Three arches.", "Seven arches.", "It has 7 arches."),
]


def make_report() -> KnowledgeReport:
    """A report as ``score_knowledge`` writes it, answers and key-span verdicts included."""
    from llmcustoms.evaluation.scoring import is_correct

    rows = []
    for question, reference, span, base, tuned, open_book in ROWS:
        row = {"fact_id": question, "question": question, "span": span, "reference": reference,
               "trained_phrasings": 2}
        for condition, said in (("base", base), ("tuned", tuned), ("open_book", open_book)):
            row[condition] = said
            row[f"{condition}_correct"] = is_correct(said, span)
        rows.append(row)
    share = lambda c: sum(r[f"{c}_correct"] for r in rows) / len(rows)  # noqa: E731
    return KnowledgeReport(questions=len(rows), base=share("base"), tuned=share("tuned"),
                           open_book=share("open_book"), rows=rows)


#: What the stub judge says of each answer: base all wrong, tuned wrong on "Gullmouth", open book all right.
VERDICTS = {answer: condition != "base" and answer != "The capital is Gullmouth."
            for row in ROWS for condition, answer in zip(("base", "tuned", "open_book"), row[3:], strict=True)}


def grader(request: Received) -> Reply:
    """The stub judge: the verdict ``VERDICTS`` holds for the answer in the prompt, as JSON."""
    user = next(m["content"] for m in request.body["messages"] if m["role"] == "user")
    return Reply(body=completion(json.dumps({"correct": VERDICTS[ANSWER_RE.search(user).group(1)]})))


def make_judge(server: StubServer, **options) -> Judge:
    """A judge aimed at the stub, with waits shrunk for tests."""
    settings = dict(concurrency=3, timeout=2.0, backoff_base=0.01, max_retry_after=2.0)
    settings.update(options)
    return Judge(FAKE_KEY, server.base_url, "stub-judge", **settings)


def test_verdicts_are_parsed_per_question_and_shares_computed_beside_the_match_score():
    report = make_report()
    match = (report.base, report.tuned, report.open_book)
    with StubServer(default=grader) as server:
        apply_judge(report, make_judge(server))
    assert report.judge_error is None
    judge = report.judge
    assert (judge["base"], judge["tuned"], judge["open_book"]) == (0.0, 0.75, 1.0)
    assert judge["model"] == "stub-judge" and judge["server"] == server.base_url
    assert judge["judged"] == 12 and judge["missing"] == 0
    assert [r["tuned_judge"] for r in report.rows] == [True, True, False, True]
    assert [r["open_book_judge"] for r in report.rows] == [True, True, True, True]
    assert (report.base, report.tuned, report.open_book) == match  # the match score is untouched
    assert len(server.requests) == 12
    line = report.judge_line()
    assert line.startswith(f"Judged by stub-judge at {server.base_url}") and "tuned 75 %" in line
    data = report.to_dict()
    assert data["judge"]["tuned"] == 0.75 and data["rows"][2]["tuned_judge"] is False


def test_each_request_carries_question_reference_answer_and_the_configured_model(monkeypatch):
    report = make_report()
    with StubServer(default=grader) as server:
        monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
        monkeypatch.setenv("GROQ_BASE_URL", server.base_url)
        monkeypatch.setenv("GROQ_MODEL", "judge-model-x")
        from llmcustoms.utils.config import Config

        judge = judge_from_config(Config().load_env_config(), backoff_base=0.01)
        assert judge.describe() == f"judged by judge-model-x at 127.0.0.1:{server.httpd.server_address[1]}"
        apply_judge(report, judge)
    assert report.judge["model"] == "judge-model-x"
    sent = {(r.body["model"], r.path, r.headers["authorization"]) for r in server.requests}
    assert sent == {("judge-model-x", "/openai/v1/chat/completions", f"Bearer {FAKE_KEY}")}
    users = [next(m["content"] for m in r.body["messages"] if m["role"] == "user") for r in server.requests]
    question, reference, _, _, tuned, _ = ROWS[2]
    assert any(question in u and f"Reference answer: {reference}" in u and f"Answer to grade: {tuned}" in u
               for u in users)
    assert all('"correct"' in r.body["messages"][0]["content"] for r in server.requests)


def test_a_failing_server_leaves_the_match_score_and_says_why():
    report = make_report()
    match = (report.base, report.tuned, report.open_book)
    with StubServer(default=lambda r: Reply(500, {"error": {"message": "upstream exploded"}})) as server:
        apply_judge(report, make_judge(server, max_retries=1))
    assert report.judge is None
    assert "HTTP 500" in report.judge_error and "upstream exploded" in report.judge_error
    assert (report.base, report.tuned, report.open_book) == match
    assert not any("tuned_judge" in row for row in report.rows)
    # It gives up after a few failures in a row instead of retrying all 12 answers.
    assert len(server.requests) < 12 * 2
    line = report.judge_line()
    assert line.startswith("No judge score:") and "\n" not in line and "Traceback" not in line
    assert report.to_dict()["judge_error"] == report.judge_error


def test_a_server_that_does_not_answer_in_time_gives_up_after_a_few_timeouts():
    report = make_report()
    with StubServer(default=lambda r: Reply(body=completion('{"correct": true}'), delay=1.5)) as server:
        started = time.monotonic()
        apply_judge(report, make_judge(server, timeout=0.2, max_retries=0))
        elapsed = time.monotonic() - started
    assert report.judge is None and "did not answer within 0.2 s" in report.judge_error
    assert elapsed < 1.5 and len(server.requests) < 12


def test_a_refused_key_stops_at_once_and_never_shows_the_key():
    report = make_report()
    with StubServer(default=lambda r: Reply(401, {"error": {"message": f"Invalid API Key {FAKE_KEY}"}})) as server:
        apply_judge(report, make_judge(server, concurrency=1))
    assert report.judge is None and "refused the key" in report.judge_error and "GROQ_API_KEY" in report.judge_error
    assert FAKE_KEY not in report.judge_error
    assert len(server.requests) == 1


def test_an_unparsable_reply_is_asked_again_and_too_many_withhold_the_score():
    report = make_report()
    with StubServer(default=grader) as server:
        server.push(Reply(body=completion("Well, it depends on what you mean.")))
        apply_judge(report, make_judge(server, concurrency=1))
    assert report.judge_error is None and report.judge["missing"] == 0
    assert len(server.requests) == 13  # the unparsable one was asked again

    report = make_report()
    with StubServer(default=lambda r: Reply(body=completion("<html>maintenance</html>"))) as server:
        apply_judge(report, make_judge(server))
    assert report.judge is None and "got no verdict" in report.judge_error
    assert "not the JSON asked for" in report.judge_error


def test_parse_verdict_is_lenient_about_layout_and_strict_about_meaning():
    assert parse_verdict('{"correct": true}') is True
    assert parse_verdict('```json\n{"correct": false}\n```') is False
    assert parse_verdict('Sure! {"correct": "yes"}') is True
    assert parse_verdict("No.") is False
    assert parse_verdict('{"answer": "Calloway"}') is None
    assert parse_verdict("The answer mentions the right year but not the month.") is None
    assert parse_verdict("") is None and parse_verdict(None) is None


def test_a_rate_limit_waits_as_long_as_retry_after_says():
    report = make_report()
    with StubServer(default=grader) as server:
        server.push(Reply(429, {"error": {"message": "slow down"}}, headers={"retry-after": "1"}))
        started = time.monotonic()
        apply_judge(report, make_judge(server, concurrency=1))
        elapsed = time.monotonic() - started
    assert report.judge_error is None and report.judge["judged"] == 12
    assert elapsed >= 0.9
    assert server.requests[1].t - server.requests[0].t >= 0.9


def test_no_key_says_how_to_set_one_and_a_local_server_needs_none():
    with pytest.raises(ConfigError) as caught:
        judge_from_config({"GROQ_BASE_URL": "https://api.groq.com"})
    assert "GROQ_API_KEY" in str(caught.value) and "GROQ_BASE_URL" in str(caught.value)
    report = apply_judge(make_report(), None, str(caught.value))
    assert report.judge is None and report.judge_line().startswith("No judge score: GROQ_API_KEY is not set")

    with StubServer(default=grader) as server:
        judge = judge_from_config({"GROQ_BASE_URL": server.base_url + "/v1", "GROQ_MODEL": "llama3.2"},
                                  backoff_base=0.01)
        report = apply_judge(make_report(), judge)
    assert report.judge["tuned"] == 0.75
    assert server.requests[0].path == "/v1/chat/completions" and "authorization" not in server.requests[0].headers


def test_reports_without_judge_fields_still_load_and_judge_fields_round_trip():
    old = {"questions": 4, "base": 0.0, "tuned": 0.5, "open_book": 1.0, "threshold": 0.6, "message": "m",
           "seconds": 1.0, "rows": []}
    report = KnowledgeReport.from_dict(old)
    assert report.judge is None and report.judge_error is None and report.judge_line() == ""
    failed = KnowledgeReport.from_dict({**old, "judge_error": "the server at x answered HTTP 500"})
    assert failed.judge_line() == "No judge score: the server at x answered HTTP 500."
    judged = KnowledgeReport.from_dict({**old, "judge": {"base": 0.0, "tuned": 0.5, "open_book": 1.0, "model": "m",
                                                         "server": "s"}})
    assert KnowledgeReport.from_dict(judged.to_dict()).judge == judged.judge


def test_eval_cli_judge(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """``eval --judge``: no key → the match score and how to set one (exit 0); with a server → judge column."""
    from llmcustoms.cli import main
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.request import TrainRequest
    from llmcustoms.training.trainer import run_training
    from tests.helpers.fact_texts import PROSE

    folder = tmp_path / "almanac"
    folder.mkdir()
    (folder / "brisca.txt").write_text(PROSE)
    result = run_training(TrainRequest(data_path=str(folder), model=str(tiny_model_dir), preset="highspeed",
                                       device="cpu", qa="offline", max_steps=1, output_dir=str(tmp_path / "runs")))
    run = str(result.run_dir.path)
    capsys.readouterr()

    assert main(["eval", run, "--judge"]) == 0
    captured = capsys.readouterr()
    assert "tuned model, closed book" in captured.out and "held-out facts" in captured.out
    assert "No judge score: GROQ_API_KEY is not set" in captured.out and "GROQ_BASE_URL" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert "GROQ_API_KEY" in RunDir.open(run).read()["knowledge"]["judge_error"]

    with StubServer(default=lambda r: Reply(body=completion('{"correct": false}'))) as server:
        monkeypatch.setenv("GROQ_API_KEY", FAKE_KEY)
        monkeypatch.setenv("GROQ_BASE_URL", server.base_url)
        monkeypatch.setenv("GROQ_MODEL", "stub-judge")
        assert main(["eval", run]) == 0
        assert server.requests == []  # nothing leaves the machine without --judge
        capsys.readouterr()
        assert main(["eval", run, "--judge", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert server.requests
        assert data["judge"]["tuned"] == 0.0 and data["judge"]["model"] == "stub-judge"
        assert data["judge_error"] is None and all(row["tuned_judge"] is False for row in data["rows"])
        assert RunDir.open(run).read()["knowledge"]["judge"]["model"] == "stub-judge"
        assert main(["eval", run, "--judge"]) == 0
        captured = capsys.readouterr()
    assert "judge" in captured.out.splitlines()[1] and f"Judged by stub-judge at {server.base_url}" in captured.out
    assert "judged by stub-judge at 127.0.0.1" in captured.err
