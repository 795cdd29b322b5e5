"""Where every analysis reads activations: one interface, `ActivationSource` (base.py), one class per source.

    ModelSource(lm, docs, ...)      model.py   a live model: a corpus's windows, or a SampleSet's texts, captured
    StoreSource(store, tokenizer)   store.py   an activation store: its rebuilt windows, or the samples' rows
    (SAE features of a host site: a third subclass, when SAEs land)

`as_source` turns what a user passes (a LanguageModel, an ActivationStore, a source) into a source. An analysis
written against the interface gives the same result from a store as from the model that filled it (float32).
The names here are the package's public face (`from lamina.analyses.sources import StoreSource`).
"""
from __future__ import annotations

from lamina.analyses.sources.base import ActivationSource
from lamina.analyses.sources.model import ModelSource
from lamina.analyses.sources.store import StoreSource
from lamina.errors import InputError
from lamina.models.language_model import LanguageModel
from lamina.store import ActivationStore

__all__ = ["ActivationSource", "ModelSource", "StoreSource", "as_source"]


def as_source(x, what: str = "this analysis") -> ActivationSource:
    """A source as it is; a LanguageModel as a `ModelSource`; an ActivationStore as a `StoreSource`."""
    if isinstance(x, ActivationSource):
        return x
    if isinstance(x, LanguageModel):
        return ModelSource(x)
    if isinstance(x, ActivationStore):
        return StoreSource(x)
    raise InputError(f"{what} reads activations from a model (lamina.load(...)), an ActivationStore or an "
                     f"ActivationSource (ModelSource, StoreSource), not from {type(x).__name__}")
