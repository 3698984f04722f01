"""Held-out evaluation of a run: metrics, the report, the general-knowledge probes and the blind A/B test."""
