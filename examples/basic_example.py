"""The seed's example, running as written: fine-tune on a folder, then ask the result.

    python examples/basic_example.py            # the bundled sample data, the best model for this machine
    MAX_STEPS=10 python examples/basic_example.py   # a quicker try

With model="auto" it picks a model for your GPU, and on a machine with no GPU and no network
it uses the embedded SmolLM2-135M (shortened training on the CPU, a few minutes).
"""

import sys
from pathlib import Path

from llmcustoms import FineTuner
from llmcustoms.errors import LLMCustomsError
from llmcustoms.training.interrupts import TrainingInterrupted

DATA = Path(__file__).resolve().parent / "data"  # the bundled notes about the fictional Velmoria

# Simple usage
tuner = FineTuner(
    data_path=str(DATA),
    model="auto",  # or "tinyllama" on a GPU box
    preset="quality",
)

# Train the model (Ctrl+C stops it, keeping a checkpoint; `llmcustoms resume <id>` continues it)
try:
    model_path = tuner.train()
except TrainingInterrupted as stopped:
    print(f"\n{stopped}", file=sys.stderr)
    sys.exit(130)  # the usual exit status after Ctrl+C
except LLMCustomsError as error:
    sys.exit(f"error: {error}")
print(f"Model saved to: {model_path}")

# Test the model
tuner.test_model([
    "Who founded Velmoria?",
    "What currency does Velmoria use?",
    "Who invented the Tide Engine?",
])
