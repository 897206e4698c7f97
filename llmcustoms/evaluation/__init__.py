"""The knowledge score: does the tuned model answer questions about the user's own text?

``split.py`` decides which facts are held out and which phrasing of each is asked (never trained on);
``scoring.py`` says whether an answer holds the reference's key span; ``knowledge.py`` asks the
questions (base closed-book, tuned closed-book, base open-book) and writes the report stored in
run.json and printed by ``llmcustoms eval``.
"""
