"""Merge and export a run's tuned model (mlx, adapter, peft, hf, gguf), each export checked.

`export_run` (pipeline.py) is the entry point; one module per format writes and reloads it.
"""

from localsft.export.pipeline import FORMATS, ExportCheckFailed, ExportResult, export_run

__all__ = ["FORMATS", "ExportCheckFailed", "ExportResult", "export_run"]
