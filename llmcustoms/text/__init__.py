"""Text primitives under both the data path and the generators: the ``Chunk`` and ``Example``
records, sentences (splitting and joining, in any script), and words and names (stopwords, the
pattern of a capitalised name, a file's title). Pure Python, no heavy imports; it imports nothing
of ours, so ``data`` and ``qa`` can both stand on it without importing each other both ways.
"""
