"""The models store: import, list and load models (see store.py and loading.py)."""

from localsft.models.loading import LoadedModel, load_model, load_tokenizer
from localsft.models.store import ModelInfo, add_model, list_models, resolve_model

__all__ = ["LoadedModel", "ModelInfo", "add_model", "list_models", "load_model",
           "load_tokenizer", "resolve_model"]
