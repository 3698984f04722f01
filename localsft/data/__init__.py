"""The data doctor: read example pairs in any common shape, check them, preview, split."""

from localsft.data.template import TokenizedExample, preview, tokenize_chat, tokenize_example, tokenize_text

__all__ = ["TokenizedExample", "preview", "tokenize_chat", "tokenize_example", "tokenize_text"]
