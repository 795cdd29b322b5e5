"""Model specs: the embedded model, random models, hub ids and local folders."""
from lamina.models.language_model import LanguageModel
from lamina.models.registry import DEFAULT_MODEL, load, random_like

__all__ = ["LanguageModel", "DEFAULT_MODEL", "load", "random_like"]
