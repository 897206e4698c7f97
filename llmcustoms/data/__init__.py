"""Reading and validating folders, Q&A extraction and generation, chat formatting, tokenizing."""
