"""Test helpers (not tests): tiny models, run folders, training data, cross-library logit checks."""
