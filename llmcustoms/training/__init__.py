"""Training: presets, run directories, events, and the LoRA trainer."""
