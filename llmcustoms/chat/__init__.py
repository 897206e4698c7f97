"""Chatting with a run's result: ``ChatSession`` loads the base model with the run's LoRA adapter,
streams the tuned model's answer, and can show the base model's answer to the same question beside it.
"""
