"""Issue 15, the data side: CJK and emoji-only text (item 17), files that vanish while a folder is read
(item 18), one example count everywhere (item 21) and a server that never answers (item 12).

Everything runs for real: the real CLI on real folders, the real offline build, and a real HTTP server on
127.0.0.1 (tests/openai_stub_server.py) for the OpenAI-compatible generator.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

import llmcustoms.data.examples as examples_module
from llmcustoms.cli import main
from llmcustoms.data.chunking import chunk_text
from llmcustoms.data.examples import build_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.text.sentences import split_sentences
from tests.conftest import SAMPLE_DATA

CHINESE = (
    "维尔莫里亚是一个位于北海的小岛国。它的首都是奎尔港，人口大约三万人。岛上的居民主要以捕鱼和制盐为生。"
    "每年春天，奎尔港都会举行灯笼节，来自各地的商人聚集在港口。\n\n"
    "潮汐机是埃默里克·达洛在一八八二年发明的。这台机器利用海水的涨落来磨面粉。如今它仍然在余烬岛上运转。"
    "游客可以在夏天参观潮汐机，了解它的历史。\n\n"
    "余烬岛的盐场已有三百年历史。盐工们把海水引入浅池，让太阳把水晒干。岛上出产的盐被运往大陆的许多城市。\n"
)
JAPANESE = (
    "ヴェルモリアは北の海にある小さな島国です。首都はクイルヘイブンで、約三万人が住んでいます。"
    "島の人々は主に漁業と塩づくりで暮らしています。毎年春には、クイルヘイブンで灯籠祭りが開かれます。\n\n"
    "潮汐機関は一八八二年にエメリック・ダロウが発明しました。この機械は潮の満ち引きを使って小麦を挽きます。"
    "「今でも動いています。」と案内人は言いました。\n"
)
EMOJI = "😀😀🎉🎉🔥🔥👍👍 ✨✨🌊🌊 🐟🐟\n" * 40


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- item 17: CJK and emoji


@pytest.fixture
def cjk_folder(tmp_path) -> Path:
    folder = tmp_path / "cjk"
    folder.mkdir()
    (folder / "zh.txt").write_text(CHINESE, encoding="utf-8")
    (folder / "ja.txt").write_text(JAPANESE, encoding="utf-8")
    return folder


def test_cjk_sentences_split_on_full_width_marks_and_are_joined_without_spaces():
    sentences = split_sentences("东京是日本的首都。它有很多人！你去过吗？「是的。」他说。")
    assert sentences == ["东京是日本的首都。", "它有很多人！", "你去过吗？", "「是的。」", "他说。"]
    # A chunk cut inside a long CJK paragraph keeps whole sentences and adds no spaces between them.
    chunks = chunk_text(CHINESE.split("\n\n")[0] * 8, max_chars=200, overlap_chars=0)
    assert len(chunks) > 1
    assert all(c.endswith("。") and " " not in c for c in chunks)


def test_a_chinese_and_japanese_folder_validates_and_prepares_into_examples(cjk_folder, capsys, tmp_path):
    code, out, _ = _cli(capsys, "validate", str(cjk_folder), "--json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "ok"
    # Tokens are counted per character for CJK text (about one each), not four characters a token.
    assert report["estimated_tokens"] >= 0.8 * report["total_chars"]
    out_file = tmp_path / "cjk.jsonl"
    code, _, err = _cli(capsys, "prepare", str(cjk_folder), "--qa", "offline", "--out", str(out_file))
    assert code == 0, err
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == report["estimated_examples"] >= 4
    answers = [r["messages"][-1]["content"] for r in rows]
    # Answers are the text's own sentences, several of them, not the whole file as one "sentence".
    assert any("。" in a[:-1] and a.count("。") >= 2 for a in answers)
    assert all("。 " not in a for a in answers)


@pytest.mark.parametrize("command", ["validate", "prepare"])
def test_emoji_only_text_is_refused_by_validate_and_prepare_with_the_same_sentence(tmp_path, capsys, command):
    folder = tmp_path / "emoji"
    folder.mkdir()
    (folder / "moods.txt").write_text(EMOJI, encoding="utf-8")
    code, _, err = _cli(capsys, command, str(folder), *(["--qa", "offline"] if command == "prepare" else []))
    expected = (f"No .txt file in '{folder}' can be used: 'moods.txt' holds no words (only emoji, symbols or "
                "punctuation); skipped it — write some sentences in it to use it.")
    assert code == 2
    if command == "validate":
        code, out, _ = _cli(capsys, "validate", str(folder), "--json")
        assert json.loads(out)["errors"] == [expected]
    else:
        assert err.strip().splitlines()[-1] == f"error: {expected}"
        assert "Traceback" not in err


# --------------------------------------------------------------------------- item 18: files that vanish


@pytest.fixture
def copied_data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for path in sorted(SAMPLE_DATA.glob("*.txt")):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _delete_before_reading(monkeypatch, folder: Path, names: list[str]) -> None:
    """A hook between the check (listing and scanning every file) and the reading that builds examples."""
    real = examples_module.iter_documents

    def hook(report, *args, **kwargs):
        for name in names:
            (folder / name).unlink()
        return real(report, *args, **kwargs)

    monkeypatch.setattr(examples_module, "iter_documents", hook)


def test_prepare_names_files_deleted_while_reading_and_writes_nothing(copied_data, monkeypatch, capsys, tmp_path):
    gone = ["life_in_quillhaven.txt", "velmoria_faq.txt"]
    _delete_before_reading(monkeypatch, copied_data, gone)
    out_file = tmp_path / "examples.jsonl"
    code, _, err = _cli(capsys, "prepare", str(copied_data), "--qa", "offline", "--out", str(out_file))
    assert code == 2
    assert not out_file.exists()  # examples from half the folder are not what was asked for
    error = err.strip().splitlines()[-1]
    assert error.startswith("error: 2 file(s) disappeared or became unreadable")
    assert all(f"'{name}'" in error for name in gone) and "run prepare again" in error
    assert err.count("disappeared") == 1  # said once
    assert "Traceback" not in err


def test_a_file_deleted_between_listing_and_scanning_is_named(copied_data, monkeypatch):
    import llmcustoms.data.reader as reader

    real = reader._scan_file

    def scan(entry, max_file_bytes):
        if entry.relpath == "festivals_of_velmoria.txt":
            os.unlink(entry.path)
        return real(entry, max_file_bytes)

    monkeypatch.setattr(reader, "_scan_file", scan)
    report = validate_folder(copied_data)
    assert report.vanished == ["festivals_of_velmoria.txt"]
    assert "'festivals_of_velmoria.txt' disappeared while the folder was being read; skipped it." in report.warnings
    messages: list[str] = []
    built = build_examples(report, qa="offline", on_message=messages.append)
    assert built.missing == ["festivals_of_velmoria.txt"]
    assert any("'festivals_of_velmoria.txt'" in m and "other 6 file(s)" in m for m in messages)


def test_training_warns_about_vanished_files(copied_data, monkeypatch, tiny_model_dir):
    from transformers import AutoTokenizer

    from llmcustoms.training.prepare import prepare_data
    from llmcustoms.training.request import TrainRequest

    _delete_before_reading(monkeypatch, copied_data, ["velmoria_overview.txt"])
    infos: list[str] = []
    warnings: list[str] = []
    request = TrainRequest(data_path=str(copied_data), qa="offline")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = prepare_data(request, tokenizer, 256, infos.append, warn=warnings.append)
    assert data.train_examples > 0
    assert len(warnings) == 1 and "'velmoria_overview.txt'" in warnings[0]
    assert not any("disappeared" in m for m in infos)


# --------------------------------------------------------------------------- item 21: one example count


def _many_files(folder: Path, count: int) -> Path:
    folder.mkdir()
    rng = random.Random(7)
    places = ["Velmoria", "Quillhaven", "Ember Isle", "Saltmere", "Harrowgate", "Lantern Bay", "Dunmore"]
    for i in range(count):
        a, b = rng.sample(places, 2)
        (folder / f"note_{i:04d}.txt").write_text(
            f"The {a} harbour was rebuilt in {1600 + i}. {a} lies {rng.randint(2, 90)} miles north of {b}. "
            f"The fair of {a} is held every {rng.choice(['spring', 'summer', 'autumn'])} by {rng.randint(3, 40)} "
            f"guilds. Captain Mara {i} sailed from {b} to {a} with {rng.randint(2, 60)} ships.\n")
    return folder


def _built_count(capsys, folder: Path, tmp_path: Path) -> int:
    out_file = tmp_path / f"{folder.name}.jsonl"
    code, _, err = _cli(capsys, "prepare", str(folder), "--qa", "offline", "--out", str(out_file))
    assert code == 0, err
    return len(out_file.read_text().splitlines())


@pytest.mark.parametrize("which", ["examples/data", "many files"])
def test_validate_data_screen_preview_and_prepare_give_one_number(which, tmp_path, capsys, monkeypatch):
    from llmcustoms_tui import backend
    from llmcustoms_tui.screens.data import report_summary

    folder = SAMPLE_DATA if which == "examples/data" else _many_files(tmp_path / "many", 300)
    code, out, _ = _cli(capsys, "validate", str(folder), "--json")
    validated = json.loads(out)
    built = _built_count(capsys, folder, tmp_path)
    assert code == 0 and validated["examples_exact"] and validated["estimated_examples"] == built
    code, out, _ = _cli(capsys, "validate", str(folder))
    assert f"Examples: {built:,} examples" in out
    # The data screen's number and its preview's (which builds with the preset's pairs, as training does).
    report = backend.validate_folder(str(folder))
    assert f"{built:,} examples offline" in report_summary(report)[1]
    monkeypatch.setattr(backend, "load_preview_tokenizer", lambda model: (None, ""))
    preview = backend.build_preview(report, "offline", "auto", preset="quality")
    assert preview["total"] == built


def test_training_builds_the_number_validate_counted(tiny_model_dir):
    from transformers import AutoTokenizer

    from llmcustoms.training.prepare import prepare_data
    from llmcustoms.training.request import TrainRequest

    infos: list[str] = []
    request = TrainRequest(data_path=str(SAMPLE_DATA), qa="offline", preset="quality")
    prepare_data(request, AutoTokenizer.from_pretrained(tiny_model_dir), 256, infos.append)
    counted = validate_folder(SAMPLE_DATA).estimated_examples
    assert any(m.startswith(f"Built {counted} examples") for m in infos), infos


def _copies(folder: Path, times: int) -> Path:
    """examples/data copied ``times`` times under new names: most examples repeat across files."""
    folder.mkdir()
    for i in range(times):
        for path in sorted(SAMPLE_DATA.glob("*.txt")):
            (folder / f"copy{i:02d}_{path.name}").write_bytes(path.read_bytes())
    return folder


@pytest.mark.parametrize("kind", ["generated notes", "repeated files"])
def test_a_large_folder_is_estimated_within_ten_percent_and_says_so(tmp_path, kind):
    from llmcustoms.data.count import count_examples, default_pairs_per_chunk

    folder = _many_files(tmp_path / "large", 600) if kind == "generated notes" else _copies(tmp_path / "copies", 24)
    report = validate_folder(folder)
    built = len(build_examples(report, qa="offline", pairs_per_chunk=default_pairs_per_chunk()))
    # Limits shrunk so that this folder counts as large: the estimate builds a spread sample of its files.
    estimate = count_examples(report, exact_limit_chars=report.total_chars // 4,
                              sample_chars=report.total_chars // 8)
    assert not estimate.exact and estimate.sampled_files < len(report.files) // 4
    assert abs(estimate.examples - built) <= 0.10 * built, (estimate.examples, built)
    assert estimate.describe().startswith("about ") and "an estimate from" in estimate.describe()


# --------------------------------------------------------------------------- item 12: a server that never answers


def _silent(request):
    """A server that accepts the request and says nothing for longer than any timeout here."""
    from tests.helpers.openai_stub_server import Reply, completion

    return Reply(delay=3.0, body=completion('{"pairs": []}'))


def test_a_silent_server_stops_generation_after_a_few_timeouts_saying_so_once():
    import time

    from llmcustoms.data.types import Chunk
    from llmcustoms.errors import GeneratorError
    from llmcustoms.qa.groq import OpenAICompatibleGenerator
    from tests.helpers.openai_stub_server import StubServer

    chunks = [Chunk(f"The harbour of Quillhaven has {i} piers. It was rebuilt in {1800 + i}.", f"q.txt:{i}")
              for i in range(20)]
    with StubServer(default=_silent) as server:
        gen = OpenAICompatibleGenerator("test-key", server.base_url, "stub", concurrency=2, timeout=0.3,
                                        backoff_base=0.01)
        start = time.monotonic()
        with pytest.raises(GeneratorError) as caught:
            gen.generate(chunks)
        elapsed = time.monotonic() - start
        host = server.base_url.removeprefix("http://")
    message = str(caught.value)
    assert f"The server at http://{host} did not answer within 0.3 s" in message and "GROQ_TIMEOUT" in message
    # Stopped after three timeouts in a row (two in flight at a time), not after every chunk's retries.
    assert len(server.requests) <= 4 and elapsed < 3.0, (len(server.requests), elapsed)


def test_progress_keeps_moving_while_the_server_is_silent():
    from llmcustoms.data.types import Chunk
    from llmcustoms.qa.groq import OpenAICompatibleGenerator
    from llmcustoms.qa.progress import GenerationProgress
    from tests.helpers.openai_stub_server import Reply, StubServer, completion

    calls: list[tuple[int, int]] = []
    slow = Reply(delay=2.6, body=completion('{"pairs": []}'))
    with StubServer(default=lambda request: slow) as server:
        gen = OpenAICompatibleGenerator("test-key", server.base_url, "stub", concurrency=1, timeout=10)
        gen.generate([Chunk("Saltmere lies on the coast. It has a lighthouse.", "s.txt:0")],
                     progress=lambda done, total: calls.append((done, total)))
    # Called again about every second while nothing finished (the old code called once, then at the end).
    assert calls.count((0, 1)) >= 3 and calls[-1] == (1, 1)

    now = [0.0]
    shown: list[str] = []
    line = GenerationProgress(shown.append, clock=lambda: now[0])
    for second in range(0, 32):
        now[0] = float(second)
        line(0, 10)
    assert shown[-1] == "Generating Q&A pairs: 0 / 10 chunks — waiting for the server… 31 s"
    assert len(shown) >= 28  # a new line every second: it visibly moves


@pytest.mark.parametrize("qa", ["groq", "auto"])
def test_prepare_against_a_silent_server_prints_the_error_once(qa, tmp_path, capsys, monkeypatch):
    from tests.helpers.openai_stub_server import StubServer

    folder = _many_files(tmp_path / "notes", 8)
    with StubServer(default=_silent) as server:
        monkeypatch.setenv("GROQ_API_KEY", "test-key")
        monkeypatch.setenv("GROQ_BASE_URL", server.base_url + "/v1")
        monkeypatch.setenv("GROQ_TIMEOUT", "0.4")
        code, _, err = _cli(capsys, "prepare", str(folder), "--qa", qa, "--yes", "--out", str(tmp_path / "x.jsonl"))
    assert err.count("did not answer within 0.4 s") == 1, err
    assert "Traceback" not in err
    if qa == "groq":
        assert code == 1 and err.strip().splitlines()[-1].startswith("error: The server at http://127.0.0.1:")
    else:  # 'auto' falls back to offline examples and says why, once
        assert code == 0 and "Using offline examples" in err
        # The fallback builds what validate counted (offline on the same chunks), not a different number.
        written = (tmp_path / "x.jsonl").read_text().splitlines()
        assert len(written) == validate_folder(folder).estimated_examples


def test_a_bad_groq_timeout_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "test-key")
    monkeypatch.setenv("GROQ_TIMEOUT", "soon")
    code, _, err = _cli(capsys, "prepare", str(SAMPLE_DATA), "--qa", "groq", "--yes")
    assert code == 2 and err.strip() == "error: GROQ_TIMEOUT must be a number of seconds, not 'soon'."


def test_the_data_screen_calls_an_estimate_an_estimate():
    from types import SimpleNamespace

    from llmcustoms.data.count import ExampleCount
    from llmcustoms_tui.screens.data import report_summary

    report = SimpleNamespace(files=[], usable_files=0, total_bytes=0, total_chars=0, estimated_tokens=9,
                             known_example_count=ExampleCount(76_004, exact=False, sampled_files=900,
                                                              total_files=20_000))
    assert report_summary(report)[1].startswith("about 76,004 examples offline (an estimate)")
