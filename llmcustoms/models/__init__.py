"""Where models come from and how they are loaded: the registry of supported models, the cache and
downloads (``ModelManager``), the check that a model folder is whole, and loading a base model (with
its LoRA adapter) for training, chat and export.
"""
