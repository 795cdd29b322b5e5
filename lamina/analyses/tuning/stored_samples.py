"""A contrast's samples read from an activation store instead of the model: `tuning.gather_activations`'s
result ({site: [n_samples, n_neurons]}, each sample's token positions pooled by mean) from stored tokens.

Each sample text is found among the store's documents by its token ids (the text, tokenized as
`gather_activations` tokenizes it, must be the start of a stored document: extract a store from the
contrast's texts, as `lamina tune --texts-out texts.jsonl` writes them). The values equal the model's when
the store's window holding each read token starts at the document's first token (`--context` at least the
texts' length), as `gather_activations` runs each text alone; a read token in a later window is refused.

`StoredSamples` is the store side of the interface `tune` reads (`sample_activations.ModelSamples` is the
model side): `spec`, `tokenizer`, `site_names`, `activations`, `token_values`. Only the stored rows of the
samples' tokens are read, chunk by chunk (`store.columns.gather`); never a whole site.
"""
from __future__ import annotations

import numpy as np
import torch

from lamina.analyses.tuning.samples import parse_layers
from lamina.analyses.sources import StoreSource
from lamina.data.windows import POSITION_BITS
from lamina.errors import InputError, SiteError
from lamina.store.columns import check_sites, find_rows, gather


class StoredSamples:
    """Sample activations read from a store whose documents are the samples' texts."""

    def __init__(self, store, tokenizer=None):
        settings = store.manifest["settings"]
        if settings.get("pack"):
            raise InputError(f"{store.folder} was extracted with --pack (documents joined in one stream); a tuning "
                             "contrast reads each text alone: extract its texts without --pack")
        if tokenizer is None:
            from lamina.models.registry import load_tokenizer

            tokenizer = load_tokenizer(settings["model"])
        self.store, self.tokenizer = store, tokenizer
        self.spec, self.seed, self.dtype = settings["model"], settings.get("seed"), settings.get("storage_dtype")
        self.source = StoreSource(store, tokenizer)
        self._docs: dict[tuple, int] | None = None     # a stored document's token ids -> its index
        self._texts: tuple = (None, [])                   # (the SampleSet, its texts' documents), last asked

    def site_names(self, kind: str, layers) -> tuple[list[int], list[str]]:
        """The layers of `kind` asked for (all those stored for None / "all"), checked against the store."""
        held = sorted(int(s.split(".")[1]) for s in self.store.sites
                      if s.startswith(kind + ".") and s.split(".")[1].isdigit())
        if not held:
            raise SiteError(f"{self.store.folder} holds no {kind} site; it holds {', '.join(self.store.sites)}")
        everything = layers is None or (isinstance(layers, str) and layers.strip() in ("", "all"))
        layer_ids = held if everything else parse_layers(layers, 1 << 16)
        names = [f"{kind}.{L}" for L in layer_ids]
        check_sites(self.store, names)
        return layer_ids, names

    def documents(self, samples) -> list[int]:
        """The store's document index of each sample text (InputError naming the first text it lacks)."""
        if self._texts[0] is samples:
            return self._texts[1]
        if self._docs is None:
            self._docs = {}
            for doc, indices in self.source.by_doc.items():
                windows = [self.source.windows[i] for i in indices]
                ids = [t for w in windows for t in w.ids[w.first_counted:]]
                self._docs.setdefault(tuple(ids), doc)
        by_prefix: dict[tuple, int] = {}
        for ids, doc in self._docs.items():
            by_prefix.setdefault(ids[:samples.max_length], doc)
        docs = [by_prefix.get(tuple(self.tokenizer(text, truncation=True, max_length=samples.max_length)["input_ids"]),
                              -1) for text in samples.texts]
        missing = [i for i in sorted(set(samples.rows["text"].astype(int))) if docs[i] < 0]
        if missing:
            raise InputError(f"{len(missing)} of the contrast's texts are not documents of {self.store.folder} "
                             f"(first: {samples.texts[missing[0]][:60]!r}); extract a store from these texts first "
                             "(`lamina tune ... --texts-out texts.jsonl`, then `lamina extract --corpus texts.jsonl`)")
        self._texts = (samples, docs)
        return docs

    def _rows(self, docs: list[int], texts, positions) -> np.ndarray:
        """Global store rows of (text, position) reads; refused when a read lies outside its text's first window."""
        late = [(t, p) for t, p in zip(texts, positions)
                if self.source.windows[self.source.window_of(docs[t], p)].start != 0]
        if late:
            raise InputError(f"{len(late)} read tokens lie beyond the first window of their text in "
                             f"{self.store.folder} (context {self.source.context}; first at position {late[0][1]}): "
                             "their stored values come from a window that does not start at the text's start. "
                             "Extract the texts with --context at least their token length (128 for the corpus "
                             "contrasts)")
        found = find_rows(self.store, np.asarray([(docs[t] << POSITION_BITS) | p for t, p in zip(texts, positions)],
                                                 dtype=np.int64))
        if (found < 0).any():
            raise InputError(f"{int((found < 0).sum())} read tokens are not stored in {self.store.folder} "
                             "(left out by --skip-first or --max-tokens); extract without them")
        return found

    def activations(self, samples, sites, batch_size: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
        """{site: float32 [n_samples, n_neurons]}, as `gather_activations` (batch_size, progress: unused)."""
        names = [getattr(s, "name", s) for s in sites]
        check_sites(self.store, names)
        docs = self.documents(samples)
        rows = samples.rows
        owner, texts, positions = [], [], []
        for i, (text, read) in enumerate(zip(rows["text"], rows["positions"])):
            for p in read:
                owner.append(i)
                texts.append(int(text))
                positions.append(int(p))
        found = self._rows(docs, texts, positions)
        owner_t = torch.as_tensor(owner)
        counts = torch.bincount(owner_t, minlength=len(rows)).float()[:, None]
        out = {}
        for name in names:
            values = gather(self.store, name, found).float()                               # [m, width]
            out[name] = (torch.zeros(len(rows), values.shape[1]).index_add_(0, owner_t, values) / counts).numpy()
        return out

    def token_values(self, samples, texts: list[int], site: str, neuron: int) -> list:
        """[(token ids, float values [n_tokens])] of one neuron over each text's stored tokens (NaN where the
        store lacks a token, e.g. position 0 with --skip-first)."""
        docs = self.documents(samples)
        ids = [self.tokenizer(samples.texts[t], truncation=True, max_length=samples.max_length)["input_ids"]
               for t in texts]
        found = find_rows(self.store, np.asarray([(docs[t] << POSITION_BITS) | p for t, i in zip(texts, ids)
                                                  for p in range(len(i))], dtype=np.int64))
        values = np.full(len(found), np.nan, dtype=np.float32)
        held = found >= 0
        if held.any():
            values[held] = gather(self.store, site, found[held], np.full(int(held.sum()), neuron)).float().numpy()
        bounds = np.cumsum([len(i) for i in ids])[:-1]
        return [(list(i), v) for i, v in zip(ids, np.split(values, bounds))]
