"""Answers from a model: chat generation, the per-row adapter switch, batched decode, base vs tuned side by side."""
