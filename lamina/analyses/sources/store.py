"""`StoreSource`: activations read from a complete activation store instead of running the model.

Windows: the store's own windows, rebuilt from its row ids (the windows and order `extract` wrote them in),
give the same batches as the model; each batch's stored rows are read chunk by chunk. Results equal those of
the model that filled the store (with a float32 store; with the store's context and windows).

Samples: each sample text is found among the store's documents by its token ids (the text, tokenized as the
model source tokenizes it, must be the start of a stored document: extract a store from the contrast's texts,
as `lamina tune --texts-out texts.jsonl` writes them). The values equal the model's when the store's window
holding each read token starts at the document's first token (`--context` at least the texts' length), as the
model source runs each text alone; a read token in a later window is refused. Only the stored rows of the
samples' tokens are read (`store.columns.gather`), never a whole site.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lamina.analyses.sources.base import ActivationSource, columns_of
from lamina.data.align import pool_positions
from lamina.data.windows import Batch, batches, make_windows, pad_id, row_id, split_row_id
from lamina.errors import InputError, SiteError
from lamina.models.language_model import check_neuron_index
from lamina.sites import parse_layers, parse_neuron
from lamina.store.columns import check_sites, chunks, find_rows, gather, shard_spans, width


class StoreSource(ActivationSource):
    """Activations read from a complete activation store (`tokenizer`: None loads the store's model's)."""

    def __init__(self, store, tokenizer=None, max_tokens: int | None = None):
        if not store.complete:
            raise InputError(f"{store.folder} holds {len(store.shards)} of {store.manifest['n_shards']} shards; "
                             "finish it with `lamina extract ... --resume` (every worker) first")
        s = store.manifest["settings"]
        if tokenizer is None:
            from lamina.models.registry import load_tokenizer

            tokenizer = load_tokenizer(s["model"])
        self.store, self.tokenizer, self.spec = store, tokenizer, s["model"]
        self.context, self.pack = s["context"], bool(s["pack"])
        self.doc_ids = list(store.manifest["doc_ids"])
        parts = [(p["row_id"].numpy(), p["token_id"].numpy()) for _, p in chunks(store, ["row_id", "token_id"],
                                                                                 rows=1 << 20)]
        rows = np.concatenate([r for r, _ in parts])
        ids = np.concatenate([t for _, t in parts])
        docs, positions = split_row_id(rows)
        # Each document's tokens, rebuilt from the stored rows (a skipped first token is unknown: padding).
        token_ids = []
        bounds = np.flatnonzero(np.diff(docs)) + 1
        for d_rows, d_pos, d_ids in zip(np.split(docs, bounds), np.split(positions, bounds), np.split(ids, bounds)):
            doc = int(d_rows[0])
            while len(token_ids) < doc:
                token_ids.append([])
            full = np.full(int(d_pos.max()) + 1, pad_id(tokenizer), dtype=np.int64)
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
            raise InputError(f"{store.folder}: the windows count {self.offsets[-1]} tokens, the store holds "
                             f"{len(rows)}")
        self._docs: dict[tuple, int] | None = None     # a stored document's token ids -> its index
        self._texts: tuple = (None, [])                 # (the SampleSet, its texts' documents), last asked

    def provenance(self) -> dict:
        return {"store": str(self.store.folder), "store_dtype": self.store.manifest["settings"].get("storage_dtype")}

    @property
    def n_rows(self) -> int:
        return sum(n for _, _, n in shard_spans(self.store))

    # ------------------------------------------------------------------ names
    def neuron(self, text: str) -> tuple[str, int]:
        site, index = parse_neuron(text, n_layers=None)  # a store knows its sites, not the model's depth
        check_neuron_index(site, index, width(self.store, site.name))
        return site.name, index

    def site_names(self, kind: str, layers) -> tuple[list[int], list[str]]:
        """The layers of `kind` asked for (all those stored for None / "all"), checked against the store."""
        held = sorted(int(s.split(".")[1]) for s in self.store.sites
                      if s.startswith(kind + ".") and s.split(".")[1].isdigit())
        if not held:
            raise SiteError(f"{self.store.folder} holds no {kind} site; it holds {', '.join(self.store.sites)}")
        everything = layers is None or (isinstance(layers, str) and layers.strip() in ("", "all"))
        layer_ids = held if everything else parse_layers(layers, n_layers=None)
        names = [f"{kind}.{L}" for L in layer_ids]
        check_sites(self.store, names)
        return layer_ids, names

    # ------------------------------------------------------------------ windows
    def stream(self, sites, batch_size: int, columns: dict | None = None) -> Iterator[tuple[Batch, dict]]:
        names = [str(s) for s in sites]
        check_sites(self.store, names)
        reader = chunks(self.store, names, columns)
        pending: list[dict] = []
        have = 0
        for batch in batches(self.windows, batch_size, pad_id(self.tokenizer), self.skip_first):
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
        names = [str(s) for s in sites]
        columns = columns or {}
        for w in chosen:
            lo, hi = int(self.offsets[w]), int(self.offsets[w + 1])
            first = self.first_counted(self.windows[w])
            out = {}
            for name in names:
                stored = columns_of(gather(self.store, name, np.arange(lo, hi)), columns.get(name)).float()
                full = torch.full((len(self.windows[w].ids), stored.shape[1]), float("nan"))
                full[first:first + len(stored)] = stored
                out[name] = full
            yield w, out

    # ------------------------------------------------------------------ samples
    def documents(self, samples) -> list[int]:
        """The store's document index of each sample text (InputError naming the first text it lacks)."""
        if self.pack:
            raise InputError(f"{self.store.folder} was extracted with --pack (documents joined in one stream); a "
                             "tuning contrast reads each text alone: extract its texts without --pack")
        if self._texts[0] is samples:
            return self._texts[1]
        if self._docs is None:
            self._docs = {}
            for doc, indices in self.by_doc.items():
                windows = [self.windows[i] for i in indices]
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

    def _sample_rows(self, docs: list[int], texts: list[int], positions: list[int]) -> np.ndarray:
        """Global store rows of (text, position) reads; refused when a read lies outside its text's first window."""
        late = [(t, p) for t, p in zip(texts, positions) if self.windows[self.window_of(docs[t], p)].start != 0]
        if late:
            raise InputError(f"{len(late)} read tokens lie beyond the first window of their text in "
                             f"{self.store.folder} (context {self.context}; first at position {late[0][1]}): "
                             "their stored values come from a window that does not start at the text's start. "
                             "Extract the texts with --context at least their token length (128 for the corpus "
                             "contrasts)")
        found = find_rows(self.store, row_id(np.asarray([docs[t] for t in texts], dtype=np.int64),
                                             np.asarray(positions, dtype=np.int64)))
        if (found < 0).any():
            raise InputError(f"{int((found < 0).sum())} read tokens are not stored in {self.store.folder} "
                             "(left out by --skip-first or --max-tokens); extract without them")
        return found

    def activations(self, samples, sites, batch_size: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
        """As the model source's (batch_size, progress: unused; nothing runs)."""
        names = [str(s) for s in sites]
        check_sites(self.store, names)
        docs = self.documents(samples)
        owner, texts, positions = [], [], []                # per read token: its sample, text and position
        for i, (text, read) in enumerate(zip(samples.rows["text"], samples.rows["positions"])):
            for p in read:
                owner.append(i)
                texts.append(int(text))
                positions.append(int(p))
        found = self._sample_rows(docs, texts, positions)
        owner_t = torch.as_tensor(owner)
        return {name: pool_positions(gather(self.store, name, found).float(), owner_t, len(samples.rows)).numpy()
                for name in names}

    def token_values(self, samples, texts: list[int], site: str, neuron: int) -> list:
        """As the model source's, from each text's stored tokens (NaN where the store lacks a token, e.g.
        position 0 with --skip-first)."""
        docs = self.documents(samples)
        ids = [self.tokenizer(samples.texts[t], truncation=True, max_length=samples.max_length)["input_ids"]
               for t in texts]
        doc_of = np.asarray([docs[t] for t, i in zip(texts, ids) for _ in i], dtype=np.int64)
        position = np.asarray([p for i in ids for p in range(len(i))], dtype=np.int64)
        found = find_rows(self.store, row_id(doc_of, position))
        values = np.full(len(found), np.nan, dtype=np.float32)
        held = found >= 0
        if held.any():
            values[held] = gather(self.store, site, found[held], np.full(int(held.sum()), neuron)).float().numpy()
        bounds = np.cumsum([len(i) for i in ids])[:-1]
        return [(list(i), v) for i, v in zip(ids, np.split(values, bounds))]
