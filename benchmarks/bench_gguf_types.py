"""GGUF types on the embedded SmolLM2-135M with a random LoRA: file size, verification numbers, perplexity on
llmcustoms/evaluation/general_data/general_text.txt (1,024 tokens). Usage: python benchmarks/bench_gguf_types.py f16 q8_0 q4_1 q4_0
(limits are lifted so every type is measured, even one the export would refuse)."""
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmcustoms.export import export_run, verify
from llmcustoms.export.verify import load_gguf_model
from llmcustoms.models.manager import ModelManager
from tests.unit.export.test_export import make_run

torch.set_num_threads(2)
for k in list(verify.LIMITS):  # measure every type, even one the export would refuse
    verify.LIMITS[k] = (10.0, 0.0)
model_dir = ModelManager(cache_dir=Path(tempfile.mkdtemp())).ensure_embedded()
root = Path(tempfile.mkdtemp())
run = make_run(model_dir, root, seed=2)
text = sorted(Path(__file__).resolve().parents[1] / "llmcustoms" / "evaluation" / "general_data".glob("*.txt"))[0].read_text()
tok = AutoTokenizer.from_pretrained(model_dir)
ids = torch.tensor([tok(text)["input_ids"][:1024]])
def ppl(model):
    with torch.no_grad():
        return math.exp(float(model(input_ids=ids, labels=ids, use_cache=False).loss))
merged = export_run(run.path, fmt="merged")
m = AutoModelForCausalLM.from_pretrained(merged.path, dtype=torch.float32)
rows = {"merged": {"ppl": ppl(m), "bytes": sum(p.stat().st_size for p in merged.path.glob("*.safetensors"))}}
del m
print(json.dumps(rows), flush=True)
for q in sys.argv[1:]:
    t = time.time()
    r = export_run(run.path, fmt="gguf", quant=q)
    g = load_gguf_model(r.path)
    rows[q] = {"bytes": r.path.stat().st_size, "ppl": ppl(g), "rel_error": r.metrics["rel_error"],
               "argmax": r.metrics["argmax_agreement"], "s": round(time.time() - t, 1)}
    del g
    print(q, json.dumps(rows[q]), flush=True)
print("TOKENS", ids.shape[1])
