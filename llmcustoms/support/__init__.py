"""Support for an answer: the passage of the run's own documents that backs it, or none.

``index.py`` cuts the run's documents into passages and keeps a BM25 index of them in the run folder
(``runs/<id>/support/``); ``verdict.py`` decides, from the question and the answer together, whether
the best passage supports the answer; ``tokens.py`` is the one tokenizer both use (words in any
script, CJK per character and bigram). Nothing here sends text anywhere.
"""
