"""One place for each piece of shared logic (issue 14, first slice).

Each test fails if a second copy comes back or if the one copy stops doing its job: the CPU's bf16
flags, the free-disk walk, freeing device memory, the kinds that end a run, the wording of events,
the run folder's file names in the TUI, and FineTuner.prepare_data training on what training trains on.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CORE = ROOT / "llmcustoms"
TUI = ROOT / "llmcustoms_tui"


def _sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


# -- the CPU's bf16 flags -------------------------------------------------------------------------
@pytest.mark.parametrize("flags, native", [("fpu sse avx512f avx512_bf16", True), ("fpu sse amx_bf16", True),
                                           ("fpu sse avx2 avx512f", False)])
def test_the_hardware_report_and_training_read_the_same_cpu_flags(monkeypatch, flags, native):
    from llmcustoms.hardware import cpu
    from llmcustoms.hardware import detector as hardware_detector

    # A CPU described once, where training reads it: the hardware report must agree with that reading.
    monkeypatch.setattr(cpu, "read_cpuinfo", lambda: f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu.cpu_has_native_bf16() is native
    assert hardware_detector.cpu_supports_bf16() is native


# -- the free-disk walk ---------------------------------------------------------------------------
def test_every_free_space_check_walks_up_alike_and_takes_unreadable_for_unknown(tmp_path, monkeypatch):
    from llmcustoms.errors import DiskSpaceError
    from llmcustoms.hardware.detector import _disk_free_mb
    from llmcustoms.training import disk_full
    from llmcustoms.utils.validators import check_disk_space

    asked: list[Path] = []
    real = shutil.disk_usage

    def usage(path):
        asked.append(Path(path))
        return real(path)._replace(free=3 * 2**20)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    target = tmp_path / "not" / "made" / "yet"
    assert _disk_free_mb(target) == 3
    assert disk_full.free_bytes(target) == 3 * 2**20
    with pytest.raises(DiskSpaceError, match=re.escape(str(tmp_path))):
        check_disk_space(target, 10 * 2**20, "the test")
    assert asked == [tmp_path, tmp_path, tmp_path]
    assert not target.parent.parent.exists(), "checking free space must create nothing"

    def broken(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "disk_usage", broken)
    assert _disk_free_mb(target) == 0
    assert disk_full.free_bytes(target) is None
    check_disk_space(target, 10**9, "the test")  # unknown is no reason to refuse: the write itself will tell


# -- freeing device memory, the kinds that end a run ----------------------------------------------
def test_only_oom_module_frees_device_memory():
    callers = [str(p.relative_to(ROOT)) for p in _sources(CORE / "training")
               if "empty_cache" in p.read_text(encoding="utf-8")]
    assert callers == ["llmcustoms/training/oom.py"]


def test_the_kinds_that_end_a_run_are_named_in_events_only():
    copies = []
    for path in _sources(CORE, TUI):
        if path.name == "events.py":
            continue
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            # an alias (X = RUN_END_KINDS) or a literal set of the end kinds is a second definition
            if re.search(r"=\s*(RUN_END_KINDS|FOLLOW_END_KINDS)\s*$", line) or \
                    re.search(r"\{\s*\"done\",\s*\"error\"", line):
                copies.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert copies == []


# -- the wording of events ------------------------------------------------------------------------
def _events() -> list[dict]:
    events = [{"kind": "start", "step": 0, "message": "Training tiny."},
              {"kind": "step", "step": 3, "max_steps": 10, "loss": 1.5, "t": 0.0},
              {"kind": "warning", "message": "Only 10 MB free."},
              {"kind": "oom_retry", "message": "batch 4 → 2"},
              {"kind": "eval", "step": 3, "eval_loss": 2.25}]
    events += [{"kind": "eval_progress", "batch": b, "batches": 100, "message": f"evaluating {b}/100"}
               for b in range(1, 101)]
    events.append({"kind": "error", "step": 3, "message": "The disk is full."})
    return events


def test_a_log_and_a_terminal_word_every_event_alike(tmp_path):
    from llmcustoms.runs.progress import LinePrinter, ProgressPrinter

    log, terminal = io.StringIO(), io.StringIO()
    plain, bar = LinePrinter(log), ProgressPrinter(terminal)
    for event in _events():
        plain(event)
        bar(event)
    lines = log.getvalue().splitlines()
    assert lines[:5] == ["Training tiny.", "step 3/10 loss 1.5", "warning: Only 10 MB free.",
                         "out of memory: batch 4 → 2", "eval loss 2.2500 at step 3"]
    assert lines[-1] == "error: The disk is full."
    assert 5 <= sum("evaluating" in line for line in lines) <= 11, "a line a tenth of an evaluation, not a batch"
    notable = [line for line in lines if not line.startswith("step ")]
    shown = terminal.getvalue()
    assert all(line in shown for line in notable)


def test_a_detached_workers_last_error_is_found_in_its_log(tmp_path):
    from llmcustoms.runs.progress import LinePrinter
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms.training.detach import _log_tail

    run = RunDir.create("tiny", root=str(tmp_path / "runs"))
    with open(run.log_path, "w", encoding="utf-8") as log:
        printer = LinePrinter(log)
        for event in _events():
            printer(event)
    assert _log_tail(run) == "The disk is full."


def test_the_worker_prints_events_with_the_shared_printer():
    tree = ast.parse((CORE / "training" / "worker.py").read_text(encoding="utf-8"))
    printed_by_hand = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                       and any(isinstance(v, ast.Constant) and "loss" in str(v.value) for v in node.values)]
    assert printed_by_hand == []
    assert "LinePrinter" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


# -- the run folder's names in the TUI ------------------------------------------------------------
def test_the_tui_spells_no_run_file_name_of_its_own():
    spelled = [f"{p.relative_to(ROOT)}:{line}: {value!r}" for p in _sources(TUI)
               for line, value in _code_strings(p) if value in ("events.jsonl", "adapter", "run.json")]
    assert spelled == []


def test_the_tui_finds_a_runs_events_and_adapter_where_the_core_puts_them(tmp_path):
    from llmcustoms.runs.rundir import RunDir
    from llmcustoms_tui import backend
    from llmcustoms_tui.launcher import RunHandle

    run = RunDir.create("tiny", root=str(tmp_path / "runs"))
    assert RunHandle(run.path).events_path == run.events_path
    assert RunHandle().events_path is None
    assert not backend.has_adapter(run.path) and not backend.has_adapter(None)
    run.adapter_dir.mkdir()
    assert backend.has_adapter(run.path) and backend.adapter_dir(run.path) == run.adapter_dir


# -- FineTuner.prepare_data is what training trains on ---------------------------------------------
def test_finetuner_prepare_data_holds_out_what_training_holds_out(sample_data, tiny_model_dir):
    from transformers import AutoTokenizer

    from llmcustoms import FineTuner
    from llmcustoms.data.count import default_pairs_per_chunk
    from llmcustoms.data.examples import build_examples
    from llmcustoms.data.reader import validate_folder
    from llmcustoms.evaluation.split import split_facts
    from llmcustoms.planning.presets import CPU_LIMITS

    assert os.environ.get("FORCE_CPU") is None
    tuner = FineTuner(str(sample_data), model=str(tiny_model_dir), preset="quality", qa="offline", progress=False)
    rows = tuner.prepare_data()
    built = build_examples(validate_folder(sample_data), qa="offline", pairs_per_chunk=default_pairs_per_chunk("quality"))
    held = {q for questions in split_facts(built.facts, seed=42).held_questions.values() for q in questions}
    assert len(held) >= 5
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = [tokenizer.decode(ids) for ids in rows["input_ids"]]
    leaked = sorted(q for q in held if any(q in text for text in texts))
    assert leaked == [], "held-out knowledge questions must never be trained on"
    # No GPU here: training cuts sequences to the CPU's length, so the examples it returns are cut alike.
    assert max(rows["length"]) <= CPU_LIMITS["max_seq_len"]


def test_one_run_scans_its_folder_once(tmp_path, tiny_model_dir, monkeypatch):
    """The early check, the generation plan and building the examples share one scan of the folder."""
    from llmcustoms.data import reader
    from llmcustoms.training.trainer import run_training
    from tests.helpers.runs_support import fast_request, make_small_folder

    scans: list[str] = []
    walker = reader._Walker

    class CountingWalker(walker):
        def __init__(self, *args, **kwargs):
            scans.append(str(args[0]) if args else "?")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(reader, "_Walker", CountingWalker)
    result = run_training(fast_request(make_small_folder(tmp_path), tiny_model_dir, max_steps=1))
    assert result.status == "done"
    assert len(scans) == 1, f"the folder was scanned {len(scans)} times in one run"


def test_gguf_names_come_from_the_gguf_library_table():
    """Every Llama weight maps through gguf's own name table; a tensor it does not know is one sentence."""
    import gguf

    from llmcustoms.errors import InputError
    from llmcustoms.export.gguf_writer import gguf_tensor_name

    table = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 4)
    for hf_name in ("model.embed_tokens.weight", "model.layers.3.self_attn.k_proj.weight",
                    "model.layers.0.mlp.gate_proj.weight", "model.norm.weight", "lm_head.weight"):
        assert gguf_tensor_name(hf_name, 4) == table.get_name(hf_name, try_suffixes=(".weight",))
    assert gguf_tensor_name("model.layers.2.self_attn.o_proj.weight", 4) == "blk.2.attn_output.weight"
    assert gguf_tensor_name("model.layers.0.self_attn.rotary_emb.inv_freq", 4) is None
    with pytest.raises(InputError, match="export 'merged' instead"):
        gguf_tensor_name("model.layers.0.adapter.lora_A.weight", 4)


def test_every_package_says_what_it_owns():
    """Each package of the core opens with a paragraph on its job (docs/ARCHITECTURE.md lists them too)."""
    import importlib
    import pkgutil

    import llmcustoms

    packages = [m.name for m in pkgutil.iter_modules(llmcustoms.__path__, "llmcustoms.") if m.ispkg]
    assert {"llmcustoms.hardware", "llmcustoms.models", "llmcustoms.planning", "llmcustoms.qa", "llmcustoms.runs",
            "llmcustoms.data", "llmcustoms.training", "llmcustoms.evaluation"} <= set(packages)
    architecture = (Path(__file__).resolve().parents[3] / "docs" / "ARCHITECTURE.md").read_text()
    for name in packages:
        doc = importlib.import_module(name).__doc__ or ""
        assert len(doc.split()) >= 15, f"{name} has no paragraph saying what it owns"
        assert f"`{name.replace('.', '/')}/`" in architecture, f"{name} is missing from docs/ARCHITECTURE.md"


# -- function-level imports -------------------------------------------------------------------------
#: Third-party modules imported inside the functions that need them, and why each is not at the top.
LAZY_THIRD_PARTY = {
    "torch": "≈1 s to import; the CLI, the TUI's first screen and a plan must not pay it",
    "transformers": "≈2 s, and pulls torch", "peft": "pulls torch and transformers", "datasets": "≈1 s",
    "bitsandbytes": "GPU-only, optional", "safetensors": "only when weights are read or written",
    "gguf": "only for a GGUF export", "numpy": "only for exports and tensors", "tokenizers": "only with a model",
    "huggingface_hub": "only when a model is downloaded", "pyarrow": "only for large tokenized sets",
    "pynvml": "optional, only on a machine with an NVIDIA driver", "psutil": "optional",
    "dotenv": "only when a .env file exists", "tqdm": "only when a progress bar is drawn",
    "httpx": "only when Q&A is generated online",
    "pypdfium2": "only when a PDF is read", "docx": "only when a Word file is read",
    "selectolax": "only when a web page or EPUB is read", "markdown_it": "only when Markdown is read",
    "llama_cpp": "optional, only for a K-quant GGUF", "ctypes": "only with llama.cpp's quantizer",
    "resource": "Unix only: the reader's worker sets its own memory limit",
    "bm25s": "pulls numpy; only when an answer's support is searched",
    "httpx2": "huggingface_hub's HTTP client: only when an export is published to the Hub",
}
#: Files whose function-level imports are their job: the CLI imports each command's modules when that
#: command runs (``llmcustoms --help`` stays ~30 ms, not ~450 ms), and the packages' lazy public names.
LAZY_BY_DESIGN = {"cli.py", "__init__.py", "export/__init__.py"}


def _imports(tree_body):
    import ast

    for node in tree_body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module or ""
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_function_level_imports_are_only_the_heavy_ones():
    """Inside a function: a heavy third-party module, or one of ours that imports one at its top; nothing else."""
    import ast

    root = Path(__file__).resolve().parents[3] / "llmcustoms"
    trees = {str(p.relative_to(root)): ast.parse(p.read_text()) for p in root.rglob("*.py")}
    module_of = {rel: "llmcustoms." + rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in trees}
    top_level = {module_of[rel]: set(_imports(tree.body)) for rel, tree in trees.items()}
    heavy = {m for m, names in top_level.items() if any(n.split(".")[0] in LAZY_THIRD_PARTY for n in names)}
    while True:  # ours that import a heavy one of ours at their top are heavy too
        more = {m for m, names in top_level.items() if names & heavy} - heavy
        if not more:
            break
        heavy |= more
    assert "llmcustoms.training.run_trainer" in heavy and "llmcustoms.data.reader" not in heavy
    wrong = []
    for rel, tree in trees.items():
        if rel in LAZY_BY_DESIGN:
            continue
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                names = set(_imports([node]))
                if any(n.split(".")[0] in LAZY_THIRD_PARTY for n in names) or names & heavy:
                    continue
                wrong.append(f"{rel}:{node.lineno} {', '.join(sorted(names))}")
    assert not wrong, "import these at the top of the module:\n" + "\n".join(wrong)


def test_no_import_cycles_at_run_time():
    """No module of ours imports, directly or not, a module that imports it back (``if TYPE_CHECKING`` aside)."""
    import grimp

    graph = grimp.build_graph("llmcustoms", "llmcustoms_tui", cache_dir=None, exclude_type_checking_imports=True)
    cycles = sorted(f"{importer} → {imported} → … → {importer}"
                    for importer in graph.modules for imported in graph.find_modules_directly_imported_by(importer)
                    if graph.chain_exists(importer=imported, imported=importer))
    assert "llmcustoms.training.trainer" in graph.find_modules_that_directly_import("llmcustoms.training.prepare")
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_two_packages_of_the_core_import_each_other():
    """Package by package (a module anywhere in one importing a module anywhere in the other), never both ways."""
    import grimp

    graph = grimp.build_graph("llmcustoms", cache_dir=None, exclude_type_checking_imports=True)
    packages = sorted(m for m in graph.find_children("llmcustoms") if graph.find_children(m))
    assert {"llmcustoms.data", "llmcustoms.qa", "llmcustoms.text"} <= set(packages)

    def uses(importer: str, imported: str) -> bool:
        return bool(graph.find_matching_direct_imports(import_expression=f"{importer}.** -> {imported}.**"))

    assert uses("llmcustoms.data", "llmcustoms.qa"), "the check sees data building examples with qa"
    both_ways = [f"{a} ⇄ {b}" for i, a in enumerate(packages) for b in packages[i + 1:] if uses(a, b) and uses(b, a)]
    assert not both_ways, "packages importing each other:\n" + "\n".join(both_ways)


def test_test_modules_share_code_only_through_tests_helpers():
    """A test module never imports another test module: what tests share lives in tests/helpers/."""
    tests = ROOT / "tests"
    wrong = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                      if n.split(".")[-1].startswith("test_") or n.startswith("tests.") and ".test_" in n]
    assert not wrong, "import from tests/helpers/ instead:\n" + "\n".join(wrong)
