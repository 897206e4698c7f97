"""From a folder of .txt files to chat examples: checking and reading the folder (``reader``,
``documents``, ``report``), the Q&A written in the text and the facts in it, chunks, building the
examples (``examples``: written Q&A, fact questions, passages, generated Q&A through ``qa``), counting
them, the train / held-out split, tokenizing with the model's chat template, and packing into rows.
"""
