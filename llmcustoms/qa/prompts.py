"""The prompt that asks a chat server for Q&A pairs, and the version that keys the cache on it."""

#: Part of every cache key: change it whenever the prompt or the parsing changes meaning.
PROMPT_VERSION = "qa-v2-facts"

SYSTEM_PROMPT = (
    "You write question-and-answer pairs that teach a small assistant the facts in a text. "
    "Use only facts stated in the text. Reply with one JSON object and nothing else, in the form "
    '{"pairs": [{"question": "...", "answer": "..."}]}.'
)
USER_PROMPT = (
    "Write {n} question-and-answer pairs about the text between <text> and </text> "
    "(fewer if the text holds fewer facts).\n"
    "- Ask about single facts: a name, a number, a date, a place, a definition or a relation.\n"
    "- Ask each fact in two or three different ways (who/what/when/where/how many, the reverse "
    "question, different words), each as its own pair with the same answer.\n"
    "- Each question must make sense on its own to someone who has not seen the text: name the "
    'subject instead of saying "the text", "the passage" or "the author".\n'
    "- Each answer is one short complete sentence stating the fact, using only the text, in its words "
    "where possible.\n"
    "- No two questions alike.\n"
    '- If the text holds no facts worth asking about, reply {{"pairs": []}}.\n'
    "- Write in the language of the text.\n\n"
    "<text>\n{chunk}\n</text>"
)
