"""Where an analysis gets its activations: a live model, or an activation store. One interface for both.

    ModelSource(lm, docs, context, ...)    corpus -> windows -> batches -> capture
    StoreSource(store, tokenizer)          the store's own windows, rebuilt from its row ids -> the same
                                           batches -> the stored rows of each batch, read chunk by chunk

Both give `windows`, `doc_ids`, `tokenizer`, and
    stream(sites, batch_size, columns)  -> (Batch, {site: [n counted tokens, width or len(columns)]})
    window_values(windows, sites, columns) -> (window index, {site: [len(window), ...]}) for shown examples
with rows in the order of `batch.count` (windows in corpus order, positions increasing), which is the
order `extract` wrote them in. An analysis written against a source therefore gives the same result from a
store as from the model that filled it (with a float32 store; with the store's context and windows).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lamina.data.windows import Batch, Window, batches, corpus_windows, make_windows, pad_id, split_row_id
from lamina.errors import InputError
from lamina.models.language_model import check_neuron_index
from lamina.store.columns import check_sites, chunks, shard_spans


class WindowTable:
    """Windows plus the lookups the analyses need: the window counting a token, a token's id."""

    def __init__(self, windows: list[Window], skip_first: bool = False):
        self.windows, self.skip_first = windows, skip_first
        self.by_doc: dict[int, list[int]] = {}                              # doc -> its window indices
        for i, w in enumerate(windows):
            self.by_doc.setdefault(w.doc, []).append(i)

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


def _columns(x: torch.Tensor, cols) -> torch.Tensor:
    return x if cols is None else x[..., list(cols)]


class ModelSource(WindowTable):
    """Activations computed by running `lm` over the windows of `docs`."""

    def __init__(self, lm, docs, context: int = 128, stride: int | None = None, pack: bool = False,
                 max_tokens: int | None = None, skip_first: bool = False):
        super().__init__(corpus_windows(lm, docs, context, stride, pack, max_tokens), skip_first)
        self.lm, self.tokenizer, self.spec = lm, lm.tokenizer, lm.spec
        self.doc_ids = [d.id for d in docs]
        self.context = context

    @classmethod
    def from_windows(cls, lm, windows: list[Window], skip_first: bool = False, doc_ids=()) -> "ModelSource":
        """A source over given windows (a Ray actor's share of a corpus), without tokenizing anything."""
        source = cls.__new__(cls)
        WindowTable.__init__(source, windows, skip_first)
        source.lm, source.tokenizer, source.spec = lm, lm.tokenizer, lm.spec
        source.doc_ids, source.context = list(doc_ids), max((len(w.ids) for w in windows), default=0)
        return source

    def neuron(self, text: str) -> tuple[str, int]:
        """`SITE:INDEX` -> (site name, index), checked against the model."""
        site, index = self.lm.neuron(text)
        check_neuron_index(site, index, self.lm.site_widths([site])[site.name])
        return site.name, index

    def _capture(self, batch: Batch, sites):
        return self.lm.capture(self.lm.inputs(batch.input_ids, batch.attention_mask), sites)

    def stream(self, sites, batch_size: int, columns: dict | None = None) -> Iterator[tuple[Batch, dict]]:
        columns = columns or {}
        for batch in batches(self.windows, batch_size, pad_id(self.tokenizer), self.skip_first):
            acts = self._capture(batch, sites)
            everything = bool(batch.count.all())  # full windows: flat views, no copies
            out = {}
            for site in sites:
                name = getattr(site, "name", site)
                x = acts[name].flatten(0, 1).flatten(1) if everything else acts[name][batch.count].flatten(1)
                out[name] = _columns(x, columns.get(name)).cpu()
            yield batch, out

    def window_values(self, chosen: list[int], sites, columns: dict | None = None, batch_size: int = 8):
        columns = columns or {}
        for start in range(0, len(chosen), batch_size):
            group = chosen[start:start + batch_size]
            batch = next(batches([self.windows[i] for i in group], len(group), pad_id(self.tokenizer)))
            acts = self._capture(batch, sites)
            for b, w in enumerate(group):
                n = len(self.windows[w].ids)
                yield w, {getattr(s, "name", s): _columns(acts[getattr(s, "name", s)][b, :n].flatten(1),
                                                          columns.get(getattr(s, "name", s))).cpu() for s in sites}


class StoreSource(WindowTable):
    """Activations read from a complete activation store, in the windows and order it was extracted in."""

    def __init__(self, store, tokenizer=None, max_tokens: int | None = None):
        if not store.complete:
            raise InputError(f"{store.folder} holds {len(store.shards)} of {store.manifest['n_shards']} shards; "
                             "finish it with `lamina extract ... --resume` (every worker) first")
        s = store.manifest["settings"]
        self.store, self.tokenizer, self.spec = store, tokenizer, s["model"]
        self.context = s["context"]
        self.doc_ids = list(store.manifest["doc_ids"])
        pad = pad_id(tokenizer)
        parts = [(p["row_id"].numpy(), p["token_id"].numpy()) for _, p in chunks(store, ["row_id", "token_id"],
                                                                                 rows=1 << 20)]
        rows = np.concatenate([r for r, _ in parts])
        ids = np.concatenate([t for _, t in parts])
        docs, positions = rows >> 24, rows & ((1 << 24) - 1)
        # Each document's tokens, rebuilt from the stored rows (a skipped first token is unknown: padding).
        token_ids = []
        bounds = np.flatnonzero(np.diff(docs)) + 1
        for d_rows, d_pos, d_ids in zip(np.split(docs, bounds), np.split(positions, bounds), np.split(ids, bounds)):
            doc = int(d_rows[0])
            while len(token_ids) < doc:
                token_ids.append([])
            full = np.full(int(d_pos.max()) + 1, pad, dtype=np.int64)
            full[d_pos] = d_ids
            token_ids.append(full.tolist())
        # a packed store is one stream (document 0) whose separators are stored tokens like any other
        super().__init__(make_windows(token_ids, s["context"], s["stride"]), s["skip_first"])
        if len(self.windows) != store.manifest["n_windows"]:
            raise InputError(f"{store.folder}: rebuilt {len(self.windows)} windows from the stored rows, the manifest "
                             f"says {store.manifest['n_windows']}; this store cannot be streamed window by window")
        if max_tokens:
            kept, total = [], 0
            for w in self.windows:
                if total >= max_tokens:
                    break
                kept.append(w)
                total += len(w.ids) - self.first_counted(w)
            self.windows = kept
        counts = [len(w.ids) - min(self.first_counted(w), len(w.ids)) for w in self.windows]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])             # window i: rows offsets[i]..[i+1]
        if not max_tokens and self.offsets[-1] != len(rows):
            raise InputError(f"{store.folder}: the windows count {self.offsets[-1]} tokens, the store holds {len(rows)}")

    def neuron(self, text: str) -> tuple[str, int]:
        """`SITE:INDEX` -> (site name, index), checked against the sites and widths stored."""
        from lamina.sites import parse_neuron
        from lamina.store.columns import width

        site, index = parse_neuron(text, n_layers=1 << 16)
        check_neuron_index(site, index, width(self.store, site.name))
        return site.name, index

    def stream(self, sites, batch_size: int, columns: dict | None = None) -> Iterator[tuple[Batch, dict]]:
        names = [getattr(s, "name", s) for s in sites]
        check_sites(self.store, names)
        reader = chunks(self.store, names, columns)
        pending: list[dict] = []
        have = 0
        for batch in batches(self.windows, batch_size, pad_id(self.tokenizer),
                             self.skip_first):
            need = batch.n_tokens
            while have < need:
                pending.append(next(reader)[1])
                have += len(pending[-1][names[0]])
            joined = {k: torch.cat([p[k] for p in pending]) if len(pending) > 1 else pending[0][k] for k in names}
            yield batch, {k: v[:need] for k, v in joined.items()}
            pending = [{k: v[need:] for k, v in joined.items()}]
            have -= need

    def window_values(self, chosen: list[int], sites, columns: dict | None = None, batch_size: int = 8):
        """Stored values of each chosen window's tokens; NaN for tokens it does not count (they are stored
        from another window's forward pass, or not at all)."""
        from lamina.store.columns import gather

        names = [getattr(s, "name", s) for s in sites]
        columns = columns or {}
        for w in chosen:
            lo, hi = int(self.offsets[w]), int(self.offsets[w + 1])
            first = self.first_counted(self.windows[w])
            out = {}
            for name in names:
                stored = _columns(gather(self.store, name, np.arange(lo, hi)), columns.get(name)).float()
                full = torch.full((len(self.windows[w].ids), stored.shape[1]), float("nan"))
                full[first:first + len(stored)] = stored
                out[name] = full
            yield w, out

    @property
    def n_rows(self) -> int:
        return sum(n for _, _, n in shard_spans(self.store))
