"""One run on disk and how to follow it: the run directory (``run.json``, lock, events, adapter,
checkpoints), the event kinds and their log, the status a reader derives from them, the health
watch, and events printed as text.
"""
