"""Models: the store (import, list), the one loader and the one adapter attach."""

from localsft.models.adapters import attach_adapter
from localsft.models.loading import LoadedModel, load_model, load_tokenizer
from localsft.models.store import ModelInfo, add_model, list_models, resolve_model

__all__ = ["LoadedModel", "ModelInfo", "add_model", "attach_adapter", "list_models", "load_model",
           "load_tokenizer", "resolve_model"]
