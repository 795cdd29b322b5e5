"""`ActivationSource`: the one interface every analysis reads activations through, and its window lookups.

Two ways to read, one set of methods for every source (a live model, a store; SAE features later):
    windows (profile, top-examples)
        stream(sites, batch_size, columns)      -> (Batch, {site: [n counted tokens, width or len(columns)]})
                                                   over `windows`, in corpus order, positions increasing
        window_values(chosen, sites, columns)   -> (window index, {site: [len(window), ...]}) for shown examples
    samples (tune, the context lesson, tune's heatmaps)
        activations(samples, sites)             -> {site: float32 [n_samples, width]}: each sample's read
                                                   tokens pooled by mean (`data.align.pool_positions`)
        token_values(samples, texts, site, i)   -> [(token ids, values [n_tokens])] of neuron i, per text
    names, checked against what the source can give (the model's sites, or the sites a store holds)
        neuron("SITE:INDEX")                    -> (site name, index)
        site_names(kind, layers)                -> (layer indices, site names)
    `store` is the ActivationStore read (None when the model runs); `provenance()` is what a result records
    about where its activations came from.

A new kind of source is a subclass that implements the abstract methods; no analysis asks which class it has.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from lamina.data.windows import Batch, Window, split_row_id

if TYPE_CHECKING:
    from lamina.analyses.tuning.contrasts import SampleSet


class ActivationSource(ABC):
    """Activations over windows of tokens, or pooled at a SampleSet's samples (module docstring).

    Subclasses set `spec` (the model spec), `tokenizer`, `context` and `doc_ids`, and call `__init__` with
    their windows (none for a source that only reads samples)."""

    spec: str
    tokenizer: object
    context: int
    doc_ids: list
    store = None  # the ActivationStore a source reads; None for a live model

    def __init__(self, windows: list[Window], skip_first: bool = False):
        self.windows, self.skip_first = windows, skip_first
        self.by_doc: dict[int, list[int]] = {}                              # doc -> its window indices
        for i, w in enumerate(windows):
            self.by_doc.setdefault(w.doc, []).append(i)

    # ------------------------------------------------------------------ window lookups (every source)
    def first_counted(self, w: Window) -> int:
        return max(w.first_counted, 1 if self.skip_first else 0)

    def window_of(self, doc: int, pos: int) -> int:
        """Index of the window that counted token `pos` of document `doc`."""
        for i in self.by_doc.get(doc, ()):
            w = self.windows[i]
            if w.start + w.first_counted <= pos < w.start + len(w.ids):
                return i
        raise KeyError((doc, pos))

    def token_at(self, row_id: int) -> int | None:
        doc, pos = split_row_id(row_id)
        try:
            w = self.windows[self.window_of(doc, pos)]
        except KeyError:
            return None
        return w.ids[pos - w.start]

    def provenance(self) -> dict:
        """What a result records about where its activations came from (a store's folder and dtype)."""
        return {}

    # ------------------------------------------------------------------ names
    @abstractmethod
    def neuron(self, text: str) -> tuple[str, int]:
        """`SITE:INDEX` -> (site name, index), checked against this source's sites and widths."""

    @abstractmethod
    def site_names(self, kind: str, layers) -> tuple[list[int], list[str]]:
        """The layers of `kind` asked for ('0-3', [1, 2], None or 'all': every layer there is) and their site
        names, checked (SiteError for a kind or layer this source lacks)."""

    # ------------------------------------------------------------------ windows
    @abstractmethod
    def stream(self, sites, batch_size: int, columns: dict | None = None) -> Iterator[tuple[Batch, dict]]:
        """Every batch of `windows` with {site: [counted tokens, width]} (`columns[site]`: only those neurons)."""

    @abstractmethod
    def window_values(self, chosen: list[int], sites, columns: dict | None = None,
                      batch_size: int = 8) -> Iterator[tuple[int, dict]]:
        """(window index, {site: [len(window), width]}) for each chosen window."""

    # ------------------------------------------------------------------ samples
    @abstractmethod
    def activations(self, samples: SampleSet, sites, batch_size: int = 8, progress: bool = False) -> dict:
        """{site: float32 numpy [n_samples, width]}: each sample's read tokens pooled by mean (q/k/v flattened
        to heads * d_head)."""

    @abstractmethod
    def token_values(self, samples: SampleSet, texts: list[int], site: str, neuron: int) -> list:
        """[(token ids, float values [n_tokens])] of one neuron over each of `texts` (indices into samples.texts)."""


def columns_of(x: torch.Tensor, cols) -> torch.Tensor:
    """The chosen neurons (last axis) of x; all of them for None."""
    return x if cols is None else x[..., list(cols)]

