"""LLMCustoms' terminal face: a keyboard-driven Textual wizard over the headless core.

Hardware → data folder → plan → live training dashboard → chat. The app only calls
``llmcustoms``; it holds no training, data or hardware logic of its own, and it imports no
torch/transformers before a screen needs them (the first screen appears in about a second).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
