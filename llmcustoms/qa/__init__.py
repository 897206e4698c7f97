"""Generated question-and-answer pairs: the chat-completions client (Groq or any OpenAI-compatible
server) with its retry policy, the request plan and rate limits, the answers' grounding check, the
cache, and the offline generator used without a key (spread over processes for a large folder,
``parallel``).
"""
