"""Export round trips: adapter → merged → GGUF (f16, q8_0) → transformers, tokenizer and Modelfile.

Runs are built here: a LoRA adapter (r=8 on every linear projection) on the tiny model and on the
embedded SmolLM2-135M, with lora_B set to small random values so the adapter really moves the
logits. Exports are made once per module and shared by the tests that inspect them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from llmcustoms.errors import DiskSpaceError, InputError, LLMCustomsError
from llmcustoms.runs.rundir import RunDir
from tests.helpers.export_runs import gguf_metadata, make_run

PROMPT = [
    {"role": "user", "content": "Quelle est la capitale de la France ? Réponds en une phrase."},
    {"role": "assistant", "content": "La capitale de la France est Paris, 2 148 000 habitants."},
    {"role": "user", "content": "And of Japan (日本)? 🙂"},
]


# -- building runs ---------------------------------------------------------------------------------
def prompt_ids(tokenizer) -> list[int]:
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


def rel_error(reference, candidate) -> float:
    return float((candidate - reference).norm() / reference.norm())


def argmax_agreement(reference, candidate) -> float:
    return float((candidate.argmax(-1) == reference.argmax(-1)).float().mean())


def base_and_adapter_logits(run: RunDir, ids, with_base: bool = False):
    """Logits of the base model (None unless ``with_base``) and of the base with the run's unmerged adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_path = run.read()["model_path"]
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    plain = logits(base, ids) if with_base else None
    tuned = PeftModel.from_pretrained(base, run.adapter_dir)
    return plain, logits(tuned, ids)


# -- a renderer for the Go text/template subset the Modelfile uses ---------------------------------
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+')


def _parse_expr(tokens: list[str]) -> list[Any]:
    out: list[Any] = []
    while tokens:
        token = tokens.pop(0)
        if token == "(":
            out.append(_parse_expr(tokens))
        elif token == ")":
            return out
        else:
            out.append(token)
    return out


def _eval(expr: Any, scope: dict[str, Any]) -> Any:
    functions = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "and": lambda *a: all(a),
                 "or": lambda *a: any(a), "not": lambda a: not a}
    if isinstance(expr, list):
        if expr and isinstance(expr[0], str) and expr[0] in functions:
            return functions[expr[0]](*[_eval(arg, scope) for arg in expr[1:]])
        assert len(expr) == 1, expr
        return _eval(expr[0], scope)
    if expr.startswith('"'):
        return json.loads(expr)
    if expr.isdigit():
        return int(expr)
    if expr.startswith("$"):
        name, _, field = expr.partition(".")
        value = scope[name]
        return value[field] if field else value
    if expr.startswith("."):
        return scope["."][expr[1:]]
    raise AssertionError(f"unsupported token {expr!r}")


def _parse_block(parts: list[tuple[str, str]], i: int) -> tuple[list[Any], int, str | None]:
    nodes: list[Any] = []
    while i < len(parts):
        kind, value = parts[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
        elif value == "end" or value == "else" or value.startswith("else if "):
            return nodes, i, value
        elif value.startswith("range "):
            match = re.fullmatch(r"range (\$\w+), (\$\w+) := (\S+)", value)
            assert match, value
            body, i, term = _parse_block(parts, i)
            assert term == "end"
            nodes.append(("range", match.group(1), match.group(2), match.group(3), body))
        elif value.startswith("if "):
            branches, condition = [], value[3:]
            while True:
                body, i, term = _parse_block(parts, i)
                branches.append((condition, body))
                if term == "end":
                    break
                condition = term[len("else if "):] if term.startswith("else if ") else None
            nodes.append(("if", branches))
        else:
            nodes.append(("expr", value))
    return nodes, i, None


def _run(nodes: list[Any], scope: dict[str, Any]) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(str(_eval(_parse_expr(_TOKEN.findall(node[1])), scope)))
        elif node[0] == "range":
            _, index_var, item_var, source, body = node
            for index, item in enumerate(_eval(source, scope)):
                out.append(_run(body, {**scope, index_var: index, item_var: item}))
        else:
            for condition, body in node[1]:
                if condition is None or _eval(_parse_expr(_TOKEN.findall(condition)), scope):
                    out.append(_run(body, scope))
                    break
    return "".join(out)


def render_go_template(template: str, messages: list[dict[str, str]]) -> str:
    """Render ``template`` as Ollama would for ``messages`` (the subset: range, if/else if/else, eq/ne/and)."""
    assert "{{-" not in template and "-}}" not in template, "no whitespace trimming is expected"
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(template):
        parts.append(("text", template[position:match.start()]))
        parts.append(("action", match.group(1).strip()))
        position = match.end()
    parts.append(("text", template[position:]))
    nodes, _, term = _parse_block(parts, 0)
    assert term is None
    scope = {".": {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}}
    return _run(nodes, scope)


def modelfile_template(modelfile: str) -> str:
    match = re.search(r'^TEMPLATE """(.*?)"""$', modelfile, re.S | re.M)
    assert match, modelfile
    return match.group(1)


# -- shared runs and exports -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory) -> RunDir:
    return make_run(tiny_model_dir, tmp_path_factory.mktemp("tiny-runs"))


@pytest.fixture(scope="module")
def tiny_exports(tiny_run) -> dict[str, Any]:
    """The tiny run exported as adapter, merged, GGUF f16 and GGUF q8_0 (once for the module).

    Reading a GGUF back costs ~10 s of CPU (transformers parses ~150k metadata entries twice), so the
    model and tokenizer transformers read from the f16 file during the export's own verification are
    kept ("read_back") and the tests below compare them independently, instead of reading the file again.
    """
    from llmcustoms.export import export_run, gguf_export, verify

    lines: list[str] = []
    read_back: dict[str, Any] = {}

    def keep(name, loader):
        def wrapper(path):
            read_back[name] = loader(path)
            return read_back[name]
        return wrapper

    verify._VERIFIED_TOKENIZERS.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf_export, "load_gguf_model", keep("model", verify.load_gguf_model))
        patch.setattr(verify, "load_gguf_tokenizer", keep("tokenizer", verify.load_gguf_tokenizer))
        exports = {
            "adapter": export_run(tiny_run.path, fmt="adapter"),
            "merged": export_run(tiny_run.path, fmt="merged", progress=lines.append),
            "f16": export_run(tiny_run.path, fmt="gguf", quant="f16", progress=lines.append),
        }
    exports["q8_0"] = export_run(tiny_run.path, fmt="gguf", quant="q8_0")
    return {**exports, "progress": lines, "read_back": read_back}


# -- tiny model: adapter and merged ------------------------------------------------------------------
def test_adapter_export_is_an_identical_copy_with_loading_instructions(tiny_run, tiny_exports):
    result = tiny_exports["adapter"]
    assert result.path == tiny_run.path / "export" / "adapter"
    for source in tiny_run.adapter_dir.iterdir():
        if source.name != "README.md":
            assert (result.path / source.name).read_bytes() == source.read_bytes()
    readme = (result.path / "README.md").read_text(encoding="utf-8")
    assert "PeftModel.from_pretrained" in readme and str(result.path) in readme
    assert readme.startswith("---\n") and "library_name: peft" in readme  # the model card replaces PEFT's
    assert "checksums identical" in result.verification


def test_merged_export_loads_with_plain_transformers_and_equals_base_plus_adapter(tiny_run, tiny_exports):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = tiny_exports["merged"]
    folder = result.path
    assert folder == tiny_run.path / "export" / "merged"
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json"):
        assert (folder / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template

    ids = prompt_ids(tokenizer)
    base, tuned = base_and_adapter_logits(tiny_run, ids, with_base=True)
    assert rel_error(tuned, base) > 1e-2, "the adapter must really change the logits"
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert torch.allclose(logits(merged, ids), tuned, atol=1e-3)  # fp32 sums in another order: ~1e-4 at logits ~30
    assert result.metrics["rel_error"] < 1e-4 and result.metrics["argmax_agreement"] == 1.0
    assert any("Merging" in line for line in tiny_exports["progress"])


def test_merged_export_keeps_a_bfloat16_base_in_bfloat16(tiny_model_dir, tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcustoms.export import export_run

    base = tmp_path / "tiny-bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(base)
    result = export_run(make_run(base, tmp_path / "runs").path, fmt="merged")
    with safe_open(result.path / "model.safetensors", "pt") as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {"BF16"}
    assert result.metrics["dtype"] == "bfloat16"
    assert result.metrics["rel_error"] < 5e-2 and result.metrics["argmax_agreement"] >= 0.9


# -- tiny model: GGUF ----------------------------------------------------------------------------------
def test_gguf_f16_round_trip_matches_the_merged_model(tiny_exports):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = tiny_exports["f16"]
    assert result.path.name == "model-f16.gguf" and result.folder.name == "gguf-f16"
    assert result.metrics["rel_error"] < 1e-2 and result.metrics["argmax_agreement"] >= 0.9
    # independently: the model transformers read from the GGUF vs the merged folder saved earlier
    merged = AutoModelForCausalLM.from_pretrained(tiny_exports["merged"].path, dtype=torch.float32)
    ids = prompt_ids(AutoTokenizer.from_pretrained(tiny_exports["merged"].path))
    reloaded = tiny_exports["read_back"]["model"]
    assert reloaded.config.tie_word_embeddings and reloaded.config.num_key_value_heads == 2
    reference, candidate = logits(merged, ids), logits(reloaded, ids)
    assert rel_error(reference, candidate) < 1e-2
    assert argmax_agreement(reference, candidate) >= 0.9


def test_gguf_f16_metadata_follows_llama_cpp(tiny_exports, tiny_model_dir):
    from transformers import AutoTokenizer

    metadata, tensors = gguf_metadata(tiny_exports["f16"].path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert metadata["general.architecture"] == "llama" and metadata["general.file_type"] == 1
    assert metadata["llama.block_count"] == 2 and metadata["llama.attention.head_count_kv"] == 2
    assert "output.weight" not in tensors, "tied embeddings: no output.weight"
    assert {"token_embd.weight", "output_norm.weight", "blk.1.attn_q.weight", "blk.1.ffn_down.weight"} <= set(tensors)
    assert metadata["tokenizer.ggml.model"] == "gpt2" and metadata["tokenizer.ggml.pre"] == "gpt-2"
    assert metadata["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert metadata["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert metadata["tokenizer.ggml.add_bos_token"] is False and metadata["tokenizer.ggml.add_eos_token"] is False
    assert metadata["tokenizer.chat_template"] == tokenizer.chat_template
    types = metadata["tokenizer.ggml.token_type"]
    assert types[tokenizer.convert_tokens_to_ids("<|im_start|>")] == 3  # CONTROL
    assert types[1000] == 1  # NORMAL
    assert len(metadata["tokenizer.ggml.tokens"]) == len(types) == metadata["llama.vocab_size"]


def test_gguf_q8_0_round_trip_is_within_limits(tiny_exports):
    result = tiny_exports["q8_0"]
    metadata, _ = gguf_metadata(result.path)
    assert metadata["general.file_type"] == 7  # MOSTLY_Q8_0
    assert result.metrics["tensors"].get("Q8_0", 0) >= 14
    assert result.metrics["rel_error"] < 5e-2 and result.metrics["argmax_agreement"] >= 0.9
    assert result.path.stat().st_size < tiny_exports["f16"].path.stat().st_size * 0.75
    assert "q8_0" in result.verification and "argmax agreement" in result.verification


def test_gguf_tokenizer_round_trip_on_unicode_and_special_tokens(tiny_exports, tiny_model_dir):
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(tiny_model_dir)
    rebuilt = tiny_exports["read_back"]["tokenizer"]  # AutoTokenizer.from_pretrained(folder, gguf_file=...)
    texts = [
        "Ünïcödé — café, naïve, 日本語, Ελληνικά, русский, emoji 🙂🚀, numbers 12345 and 3.14.\n\tTabs  and  spaces.",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|><|endoftext|>"
        "<repo_name>llmcustoms<file_sep>main.py<gh_stars>5",
        original.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True),
    ]
    for text in texts:
        for special in (False, True):
            ids = original(text, add_special_tokens=special)["input_ids"]
            assert rebuilt(text, add_special_tokens=special)["input_ids"] == ids
            assert rebuilt.decode(ids) == original.decode(ids)
    assert original.convert_tokens_to_ids("<|im_end|>") in original(texts[1])["input_ids"]


def test_the_tokenizer_check_catches_special_tokens_typed_as_normal(tiny_model_dir, tmp_path):
    import gguf
    from transformers import AutoTokenizer

    from llmcustoms.export.gguf_vocab import NORMAL, build_vocab
    from llmcustoms.export.verify import verify_gguf_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    vocab = build_vocab(tokenizer, len(tokenizer))
    vocab.token_types = [NORMAL] * len(vocab.tokens)  # the pitfall: added tokens not typed CONTROL
    writer = gguf.GGUFWriter(tmp_path / "vocab.gguf", "llama")
    vocab.add_to(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(LLMCustomsError, match="splits text differently"):
        verify_gguf_tokenizer(tokenizer, tmp_path / "vocab.gguf", fingerprint="broken", pre=vocab.pre)


def test_modelfile_template_renders_like_the_chat_template(tiny_exports, tiny_model_dir):
    from transformers import AutoTokenizer

    result = tiny_exports["f16"]
    text = result.modelfile.read_text(encoding="utf-8")
    assert f"FROM ./{result.path.name}" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature" in text
    assert result.ollama_command == f"ollama create {result.ollama_command.split()[2]} -f {result.modelfile}"
    template = modelfile_template(text)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    two_turns = [{"role": "user", "content": "Hi! Who are you?"},
                 {"role": "assistant", "content": "A small model.\nNice to meet you."},
                 {"role": "user", "content": "Tell me about the sea 🌊."}]
    with_system = [{"role": "system", "content": "You answer in French."}, *two_turns]
    for messages in (two_turns, with_system):
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert render_go_template(template, messages) == expected


# -- refusals --------------------------------------------------------------------------------------------
def test_refuses_an_unfinished_run(tiny_model_dir, tmp_path):
    from llmcustoms.export import export_run
    from llmcustoms.runs.rundir import RunLock

    running = make_run(tiny_model_dir, tmp_path / "runs", status="running", adapter=False)
    with RunLock(running):  # held as the live training process holds it
        with pytest.raises(InputError, match="still running"):
            export_run(running.path, fmt="merged")
    # The same run.json with no process behind it (a kill -9): interrupted, and how to go on.
    with pytest.raises(InputError, match="interrupted.*llmcustoms resume"):
        export_run(running.path, fmt="merged")
    failed = make_run(tiny_model_dir, tmp_path / "runs", status="failed", adapter=False)
    with pytest.raises(InputError, match="did not finish"):
        export_run(failed.path, fmt="adapter")
    empty = make_run(tiny_model_dir, tmp_path / "runs", status="done", adapter=False)
    with pytest.raises(InputError, match="no adapter"):
        export_run(empty.id, fmt="gguf", runs_root=tmp_path / "runs")
    assert not (running.path / "export").exists() and not (empty.path / "export").exists()


def test_never_overwrites_an_export_without_force(tiny_run, tmp_path):
    from llmcustoms.export import export_run

    target = tmp_path / "my-export"
    export_run(tiny_run.path, fmt="adapter", out=target)
    before = tree_bytes(target)
    with pytest.raises(InputError, match="--force"):
        export_run(tiny_run.path, fmt="adapter", out=target)
    assert tree_bytes(target) == before
    result = export_run(tiny_run.path, fmt="adapter", out=target, force=True)
    assert result.path == target and (target / "adapter_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folders left behind"


# -- --force replaces only what this tool wrote ----------------------------------------------------------
def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → content), to prove a folder was left untouched."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_force_never_replaces_a_folder_of_the_users_files(tiny_run, tmp_path, capsys):
    from llmcustoms.cli import main
    from llmcustoms.export import export_run

    target = tmp_path / "My Documents"
    (target / "taxes").mkdir(parents=True)
    (target / "letter.txt").write_text("Dear Ada,\n", encoding="utf-8")
    (target / "taxes" / "2024.pdf").write_bytes(bytes(range(256)) * 40)
    before = tree_bytes(target)
    with pytest.raises(InputError, match="not an export written by LLMCustoms") as refused:
        export_run(tiny_run.path, fmt="adapter", out=target, force=True)
    assert str(target) in str(refused.value) and "nothing was touched" in str(refused.value)
    assert tree_bytes(target) == before
    # the command line: one sentence, exit code 2, the folder still byte-identical
    assert main(["export", str(tiny_run.path), "--format", "adapter", "--out", str(target), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(target) in err and "nothing was touched" in err
    assert "Traceback" not in err
    assert tree_bytes(target) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging folders left behind"


def test_force_never_replaces_a_folder_holding_other_runs(tiny_run, tiny_model_dir, tmp_path):
    from llmcustoms.export import export_run

    runs = tmp_path / "other-runs"
    for name in ("first", "second"):
        run = RunDir.create(name, root=runs, status="done", model_path=str(tiny_model_dir))
        run.adapter_dir.mkdir()
        (run.adapter_dir / "adapter_model.safetensors").write_bytes(name.encode() * 100)
    before = tree_bytes(runs)
    assert len(before) >= 4
    for fmt in ("adapter", "merged"):
        with pytest.raises(InputError, match="not an export written by LLMCustoms"):
            export_run(tiny_run.path, fmt=fmt, out=runs, force=True)
    assert tree_bytes(runs) == before


def test_force_refuses_a_plain_file_and_an_export_holding_other_files(tiny_run, tmp_path):
    from llmcustoms.export import export_run

    notes = tmp_path / "notes.md"
    notes.write_text("my notes", encoding="utf-8")
    with pytest.raises(InputError, match="a file, outside any export folder"):
        export_run(tiny_run.path, fmt="adapter", out=notes, force=True)
    assert notes.read_text(encoding="utf-8") == "my notes"

    from llmcustoms.export.staging import MARKER

    # an export the user later put their own file into is not the tool's alone any more
    target = tmp_path / "exported"
    export_run(tiny_run.path, fmt="adapter", out=target)
    assert (target / MARKER).is_file()
    (target / "my-notes.txt").write_text("keep me", encoding="utf-8")
    before = tree_bytes(target)
    with pytest.raises(InputError, match="my-notes.txt"):
        export_run(tiny_run.path, fmt="adapter", out=target, force=True)
    assert tree_bytes(target) == before


def test_force_replaces_an_earlier_export_which_carries_the_marker(tiny_run, tmp_path):
    from llmcustoms.export import export_run
    from llmcustoms.export.staging import MARKER

    target = tmp_path / "exports" / "adapter"
    export_run(tiny_run.path, fmt="adapter", out=target)
    manifest = json.loads((target / MARKER).read_text(encoding="utf-8"))
    assert manifest["tool"] == "llmcustoms" and manifest["format"] == "adapter"
    assert manifest["run_id"] == tiny_run.id and manifest["created_at"]
    assert set(manifest["files"]) == set(tree_bytes(target)) - {MARKER}
    (target / "adapter_config.json").write_text("{}", encoding="utf-8")  # the old export, changed
    result = export_run(tiny_run.path, fmt="adapter", out=target, force=True)
    assert result.path == target and (target / MARKER).is_file()
    assert (target / "adapter_config.json").read_bytes() == (tiny_run.adapter_dir / "adapter_config.json").read_bytes()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "no old or staging folder left"


def test_every_export_format_carries_the_marker(tiny_run, tiny_exports):
    from llmcustoms.export.staging import MARKER

    for key, fmt in (("adapter", "adapter"), ("merged", "merged"), ("f16", "gguf"), ("q8_0", "gguf")):
        folder = tiny_exports[key].folder
        manifest = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        assert manifest["format"] == fmt and manifest["run_id"] == tiny_run.id, key
        assert set(manifest["files"]) == set(tree_bytes(folder)) - {MARKER}, key
    assert json.loads((tiny_exports["q8_0"].folder / MARKER).read_text(encoding="utf-8"))["quant"] == "q8_0"


def test_refuses_an_architecture_it_cannot_write(tmp_path):
    from llmcustoms.export import export_run

    model = tmp_path / "gpt2-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    run = RunDir.create("gpt2", root=tmp_path / "runs", status="done", model_path=str(model))
    run.adapter_dir.mkdir()
    (run.adapter_dir / "adapter_config.json").write_text("{}")
    (run.adapter_dir / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="Llama-family"):
        export_run(run.path, fmt="gguf")
    assert not (run.path / "export").exists()


def test_refuses_when_the_disk_is_too_full(tiny_run, tmp_path, monkeypatch):
    from llmcustoms.export import export_run

    real = shutil.disk_usage
    # Every free-space check reads shutil.disk_usage (llmcustoms/utils/disk.py): a nearly full disk for all.
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1024))
    with pytest.raises(DiskSpaceError, match="Not enough disk space"):
        export_run(tiny_run.path, fmt="merged", out=tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_refuses_bad_arguments(tiny_run, tmp_path):
    from llmcustoms.export import export_run

    with pytest.raises(InputError, match="Unknown export format"):
        export_run(tiny_run.path, fmt="onnx")
    with pytest.raises(InputError, match="quantization"):
        export_run(tiny_run.path, fmt="gguf", quant="q3_k_s")
    with pytest.raises(InputError, match="folder"):
        export_run(tiny_run.path, fmt="gguf", out=tmp_path / "model.gguf")
    for unsafe in (tiny_run.adapter_dir, tiny_run.path, tiny_run.path.parent, tiny_run.adapter_dir / "x",
                   tiny_run.run_json, tiny_run.path / "checkpoints"):
        with pytest.raises(InputError, match="choose another --out"):
            export_run(tiny_run.path, fmt="adapter", out=unsafe, force=True)
    with pytest.raises(InputError, match="choose another --out"):
        export_run(tiny_run.path, fmt="merged", out=Path(tiny_run.read()["model_path"]), force=True)
    assert (tiny_run.adapter_dir / "adapter_config.json").is_file()


def test_a_failed_verification_is_an_error_and_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    from llmcustoms.export import export_run, verify

    monkeypatch.setitem(verify.LIMITS, "merged-float32", (0.0, 1.0))
    with pytest.raises(LLMCustomsError, match="Verification failed"):
        export_run(tiny_run.path, fmt="merged", out=tmp_path / "out" / "merged")
    assert list((tmp_path / "out").iterdir()) == [], "neither the export nor its staging folder may remain"


# -- small pieces --------------------------------------------------------------------------------------
def test_rope_permutation_is_undone_by_the_transformers_reader():
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from llmcustoms.export.gguf_writer import permute_for_rope

    weights = np.arange(24 * 6, dtype=np.float32).reshape(24, 6)  # 4 heads of 6 dims, kv: 2 heads
    processor = LlamaTensorProcessor(config={"num_attention_heads": 4, "num_key_value_heads": 2})
    q = processor.process(permute_for_rope(weights, 4, 4), "blk.0.attn_q.weight").weights
    k = processor.process(permute_for_rope(weights[:12], 4, 2), "blk.0.attn_k.weight").weights
    assert np.array_equal(q, weights) and np.array_equal(k, weights[:12])
    assert not np.array_equal(permute_for_rope(weights, 4, 4), weights)


def test_pre_tokenizer_names():
    from llmcustoms.export.gguf_vocab import pre_tokenizer_name

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer_name({"pre_tokenizer": byte_level}) == "gpt-2"
    smollm = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_tokenizer_name({"pre_tokenizer": smollm}) == "smollm"
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    llama3 = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": GGUF_PRE_TOKENIZER_SPLITS["llama-bpe"]}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
    assert pre_tokenizer_name({"pre_tokenizer": llama3}) == "llama-bpe"
    with pytest.raises(InputError, match="pre-tokenizer"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Whitespace"}})


def test_chat_format_is_measured_for_other_templates(tiny_model_dir):
    from transformers import AutoTokenizer

    from llmcustoms.export.modelfile import derive_chat_format

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = (  # TinyLlama's (Zephyr) template
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] "
        "+ eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
        "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
        "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
    )
    fmt = derive_chat_format(tokenizer)
    assert fmt is not None and fmt.default_system == ""
    messages = [{"role": "system", "content": "Be kind."}, *PROMPT]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_go_template(fmt.go_template(), messages) == expected
    tokenizer.chat_template = "{{ messages | map(attribute='content') | join(' / ') }}"
    assert derive_chat_format(tokenizer) is None


# -- the embedded SmolLM2-135M ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded_run(embedded_model_dir, tmp_path_factory) -> RunDir:
    return make_run(embedded_model_dir, tmp_path_factory.mktemp("embedded-runs"), seed=2)


@pytest.mark.integration
def test_embedded_merged_equals_base_plus_adapter(embedded_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcustoms.export import export_run

    result = export_run(embedded_run.path, fmt="merged")
    ids = prompt_ids(AutoTokenizer.from_pretrained(result.path))
    _, tuned = base_and_adapter_logits(embedded_run, ids)
    merged = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32)
    assert torch.allclose(logits(merged, ids), tuned, atol=1e-3)  # fp32 sums in another order: ~1e-4 at logits ~30


@pytest.mark.integration
@pytest.mark.parametrize("quant, max_rel", [("f16", 1e-2), ("q8_0", 5e-2)])
def test_embedded_gguf_round_trip(embedded_run, embedded_model_dir, quant, max_rel):
    from transformers import AutoTokenizer

    from llmcustoms.export import export_run

    result = export_run(embedded_run.path, fmt="gguf", quant=quant)
    assert result.metrics["rel_error"] < max_rel and result.metrics["argmax_agreement"] >= 0.9
    assert "tokenizer ids identical" in result.verification
    metadata, tensors = gguf_metadata(result.path)
    assert metadata["llama.block_count"] == 30 and "output.weight" not in tensors
    template = modelfile_template(result.modelfile.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    messages = PROMPT[:3]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_go_template(template, messages) == expected
