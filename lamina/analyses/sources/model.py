"""`ModelSource`: activations computed by running a live model (every forward pass's inputs from `lm.inputs`).

    ModelSource(lm, docs, context, ...)   corpus -> windows -> batches -> capture    (profile, top-examples)
    ModelSource(lm)                       a SampleSet's texts -> capture -> pooled   (tune, the context lesson)

Sample texts go through the model sorted by length, every site captured in one forward pass (early stop after
the deepest). A batch holds up to `batch_size` x 128 padded tokens: `batch_size` texts of 128 tokens, more
short ones (a forward pass on CPU costs about the same for 8 short texts as for 64).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from lamina.analyses.sources.base import ActivationSource, columns_of
from lamina.data.align import pool_positions
from lamina.data.windows import Batch, Window, batches, corpus_windows, pad_id
from lamina.errors import InputError
from lamina.models.language_model import check_neuron_index
from lamina.sites import parse_layers


class ModelSource(ActivationSource):
    """Activations computed by running `lm`: over the windows of `docs`, or over a SampleSet's texts."""

    def __init__(self, lm, docs=None, context: int = 128, stride: int | None = None, pack: bool = False,
                 max_tokens: int | None = None, skip_first: bool = False):
        windows = [] if docs is None else corpus_windows(lm, docs, context, stride, pack, max_tokens)
        super().__init__(windows, skip_first)
        self.lm, self.tokenizer, self.spec = lm, lm.tokenizer, lm.spec
        self.doc_ids = [d.id for d in docs or ()]
        self.context = context

    @classmethod
    def from_windows(cls, lm, windows: list[Window], skip_first: bool = False, doc_ids=()) -> ModelSource:
        """A source over given windows (a Ray actor's share of a corpus), without tokenizing anything."""
        source = cls(lm, skip_first=skip_first)
        ActivationSource.__init__(source, windows, skip_first)
        source.doc_ids, source.context = list(doc_ids), max((len(w.ids) for w in windows), default=0)
        return source

    # ------------------------------------------------------------------ names
    def neuron(self, text: str) -> tuple[str, int]:
        site, index = self.lm.neuron(text)
        check_neuron_index(site, index, self.lm.site_widths([site])[site.name])
        return site.name, index

    def site_names(self, kind: str, layers) -> tuple[list[int], list[str]]:
        layer_ids = parse_layers(layers, self.lm.n_layers)
        return layer_ids, [s.name for s in self.lm.sites([f"{kind}.{L}" for L in layer_ids])]  # SiteError

    # ------------------------------------------------------------------ windows
    def _capture(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, sites):
        return self.lm.capture(self.lm.inputs(input_ids, attention_mask), sites)

    def stream(self, sites, batch_size: int, columns: dict | None = None) -> Iterator[tuple[Batch, dict]]:
        if not self.windows:
            raise InputError("this ModelSource holds no windows to stream: give it documents, ModelSource(lm, docs)")
        columns = columns or {}
        names = [str(s) for s in sites]
        for batch in batches(self.windows, batch_size, pad_id(self.tokenizer), self.skip_first):
            acts = self._capture(batch.input_ids, batch.attention_mask, names)
            everything = bool(batch.count.all())  # full windows: flat views, no copies
            out = {}
            for name in names:
                x = acts[name].flatten(0, 1).flatten(1) if everything else acts[name][batch.count].flatten(1)
                out[name] = columns_of(x, columns.get(name)).cpu()
            yield batch, out

    def window_values(self, chosen: list[int], sites, columns: dict | None = None, batch_size: int = 8):
        columns = columns or {}
        names = [str(s) for s in sites]
        for start in range(0, len(chosen), batch_size):
            group = chosen[start:start + batch_size]
            batch = next(batches([self.windows[i] for i in group], len(group), pad_id(self.tokenizer)))
            acts = self._capture(batch.input_ids, batch.attention_mask, names)
            for b, w in enumerate(group):
                n = len(self.windows[w].ids)
                yield w, {name: columns_of(acts[name][b, :n].flatten(1), columns.get(name)).cpu() for name in names}

    # ------------------------------------------------------------------ samples
    def _encode(self, samples, texts: list[int]) -> dict:
        return self.tokenizer([samples.texts[t] for t in texts], padding=True, truncation=True,
                              max_length=samples.max_length, return_tensors="pt")

    def activations(self, samples, sites, batch_size: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
        rows = samples.rows
        sites = self.lm.sites([str(s) for s in sites])
        by_text = rows.groupby("text").indices
        lengths = {t: len(self.tokenizer(samples.texts[t], truncation=True, max_length=samples.max_length)["input_ids"])
                   for t in by_text}
        order = sorted(by_text, key=lambda t: lengths[t])
        chunks, budget = [[]], batch_size * 128
        for t in order:  # lengths ascending: the last text of a batch is its longest
            if chunks[-1] and (len(chunks[-1]) + 1) * lengths[t] > budget:
                chunks.append([])
            chunks[-1].append(t)
        out: dict[str, np.ndarray] = {}
        positions = rows["positions"].tolist()
        for chunk in tqdm(chunks, desc="capture", unit="batch", disable=not progress):
            enc = self._encode(samples, chunk)
            mask = enc["attention_mask"]
            acts = self._capture(enc["input_ids"], mask, sites)
            owner, b_idx, t_idx, local = [], [], [], []   # per read token: its sample (in `local`), batch row, token
            for b, t in enumerate(chunk):
                real = mask[b].nonzero().flatten()  # positions of real tokens (left or right padding)
                for s in by_text[t]:
                    local.append(s)
                    for p in positions[s]:
                        owner.append(len(local) - 1)
                        b_idx.append(b)
                        t_idx.append(int(real[p]))
            for site in sites:
                a = acts[site.name].flatten(2)                                       # [batch, tokens, width]
                read = a[torch.as_tensor(b_idx), torch.as_tensor(t_idx)].float().cpu()  # [m, width]
                if site.name not in out:
                    out[site.name] = np.empty((len(rows), a.shape[-1]), dtype=np.float32)
                out[site.name][local] = pool_positions(read, torch.as_tensor(owner), len(local)).numpy()
        return out

    def token_values(self, samples, texts: list[int], site: str, neuron: int) -> list:
        enc = self._encode(samples, texts)
        a = self._capture(enc["input_ids"], enc["attention_mask"], [site])[site]
        a = a.flatten(2)[..., neuron].float().cpu().numpy()                 # [batch, tokens]
        out = []
        for b in range(len(texts)):
            real = enc["attention_mask"][b].nonzero().flatten().numpy()
            out.append((enc["input_ids"][b, real].tolist(), a[b, real]))
        return out
