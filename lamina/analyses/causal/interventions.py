"""Ablation and steering as edits, and the reference statistics they draw from.

    Ablate("mlp_post.13", neurons=[2022], method="mean")   -> a set edit holding the reference mean
    Steer("resid_post.6", vector, alpha=4.0)                -> an add edit of alpha * vector

Their effect on next-token prediction is measured by `causal/metrics.py` (`edit_metrics`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lamina.data.windows import batches, corpus_windows, pad_id
from lamina.edits import Edit
from lamina.errors import InputError

METHODS = ("zero", "mean", "resample")


@dataclass
class Reference:
    """Statistics of one site over reference windows: overall and per-position means, and sample rows."""

    site: str
    mean: torch.Tensor            # [width] over every counted token
    position_sum: torch.Tensor    # [tokens, width]
    position_count: torch.Tensor  # [tokens]
    samples: torch.Tensor         # [rows, tokens, width]: the first full-length windows (for resample)
    n_tokens: int

    def position_mean(self, tokens: int | None = None) -> torch.Tensor:
        """[tokens, width]; every position needs at least one reference token."""
        count = self.position_count[:tokens] if tokens else self.position_count
        if tokens and len(self.position_count) < tokens or bool((count == 0).any()):
            raise InputError(f"the reference for {self.site} has no token at some positions; use a longer "
                             "reference corpus or no --positions")
        return self.position_sum[:len(count)] / count[:, None]


def spread_windows(lm, docs, context: int = 128, max_tokens: int | None = None, from_end: bool = False):
    """Windows taken in turn from every document (each document's first windows, or its last ones with
    `from_end`) up to `max_tokens`: a small budget still spans many documents, the bootstrap's units, and an
    evaluation (from the start) and its reference (from the end) do not share windows."""
    by_doc: dict[int, list] = {}
    for w in corpus_windows(lm, docs, context=context):
        by_doc.setdefault(w.doc, []).append(w)
    queues = [ws[::-1] if from_end else ws for ws in by_doc.values()]
    kept, total, depth = [], 0, 0
    while any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and not (max_tokens and total >= max_tokens):
                kept.append(q[depth])
                total += len(q[depth].ids) - q[depth].first_counted
        depth += 1
    return kept


def reference_stats(lm, site: str, docs, context: int = 128, max_tokens: int | None = 20000, batch_size: int = 8,
                    skip_first: bool = False, n_samples: int = 32, progress: bool = False) -> Reference:
    """One streaming pass over `docs`, reading each document's last windows (see `spread_windows`)."""
    parsed = lm.sites([site])
    if len(parsed) != 1:
        raise InputError(f"a reference needs one site with its layer, e.g. {parsed[0].name}")
    s = parsed[0]
    windows = spread_windows(lm, docs, context=context, max_tokens=max_tokens, from_end=True)
    total, n, pos_sum, pos_count, samples = None, 0, None, None, []
    for batch in tqdm(list(batches(windows, batch_size, pad_id(lm.tokenizer), skip_first)),
                      desc=f"reference {s.name}", disable=not progress, leave=False):
        x = lm.capture(lm.inputs(batch.input_ids, batch.attention_mask), [s])[s.name]
        x = x.flatten(2).double().cpu()                                      # [b, t, width]
        count = batch.count
        if total is None:
            total = torch.zeros(x.shape[-1], dtype=torch.double)
            pos_sum = torch.zeros(context, x.shape[-1], dtype=torch.double)
            pos_count = torch.zeros(context, dtype=torch.double)
        x = x.nan_to_num() * count[..., None]
        total += x.sum((0, 1))
        n += int(count.sum())
        t = x.shape[1]
        pos_sum[:t] += x.sum(0)
        pos_count[:t] += count.sum(0)
        for b, w in enumerate(batch.windows):
            if len(w.ids) == context and len(samples) < n_samples:
                samples.append(x[b].float())
    if n == 0:
        raise InputError(f"the reference corpus gives no counted token for {s.name}; mean ablation needs some")
    empty = torch.zeros(0, context, total.shape[0])
    return Reference(s.name, (total / n).float(), pos_sum.float(), pos_count.float(),
                     torch.stack(samples) if samples else empty, n)


def reference_from_store(folder, site: str) -> Reference:
    """Mean statistics of `site` from an activation store (lamina/store), instead of a fresh pass."""
    from lamina.store import ActivationStore

    store = ActivationStore(folder)
    x = store.read(site).double()                                        # [rows, width]
    if x.shape[0] == 0:
        raise InputError(f"the store {folder} holds no rows for {site}; mean ablation needs some")
    settings = store.manifest["settings"]
    context, stride = int(settings.get("context", 128)), settings.get("stride") or settings.get("context", 128)
    pos = torch.tensor(store.tokens()["position"].to_numpy(), dtype=torch.long)
    width = x.shape[1]
    pos_sum, pos_count = torch.zeros(context, width, dtype=torch.double), torch.zeros(context, dtype=torch.double)
    if int(stride) == context and not settings.get("pack"):
        within = pos % context                                              # position inside its window
        pos_sum.index_add_(0, within, x)
        pos_count.index_add_(0, within, torch.ones_like(within, dtype=torch.double))
    return Reference(site, x.mean(0).float(), pos_sum.float(), pos_count.float(), torch.zeros(0, context, width),
                     int(x.shape[0]))


@dataclass(frozen=True, eq=False)
class Ablate:
    """Ablate neurons (or q/k/v heads) of one site: zero, mean (of `reference`) or resample (from it).

    With positions given, the mean is position-matched (the reference mean at each position). `reference`
    defaults to 20,000 tokens of the built-in corpus, computed when the edit is bound to a model."""

    site: str
    neurons: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    positions: object = None
    method: str = "zero"
    reference: Reference | None = None
    seed: int = 0

    def to_edit(self, lm) -> Edit:
        if self.method not in METHODS:
            raise InputError(f"unknown ablation method '{self.method}'; choose one of {', '.join(METHODS)}")
        kw = dict(neurons=self.neurons, heads=self.heads, positions=self.positions)
        if self.method == "zero":
            return Edit(self.site, "zero", **kw)
        ref = self.reference
        if ref is None:
            from lamina.data.corpus import load_corpus

            ref = reference_stats(lm, self.site, load_corpus())
        cols = _columns(lm, self.neurons, self.heads)
        if self.method == "mean":
            matched = self.positions not in (None, "all")
            value = ref.position_mean() if matched else ref.mean
            return Edit(self.site, "set", value=value[..., cols] if cols is not None else value, **kw)
        if len(ref.samples) == 0:
            raise InputError(f"the reference for {self.site} has no full-length window to resample from")
        gen = torch.Generator().manual_seed(self.seed)
        rows = ref.samples if cols is None else ref.samples[..., cols]

        def draw(batch: int, tokens: int) -> torch.Tensor:  # other reference texts, one per batch row
            return rows[torch.randint(len(rows), (batch,), generator=gen)][:, :tokens]

        return Edit(self.site, "set", value=draw, **kw)


def _columns(lm, neurons, heads):
    if heads is not None:
        d = lm.anatomy.d_head
        return [h * d + i for h in heads for i in range(d)]
    return None if neurons is None else list(neurons)


@dataclass(frozen=True, eq=False)
class Steer:
    """Add alpha * vector at a site (every position unless `positions` says otherwise)."""

    site: str
    vector: object
    alpha: float = 1.0
    positions: object = None

    def to_edit(self, lm) -> Edit:
        v = torch.as_tensor(np.asarray(self.vector), dtype=torch.float32).flatten()
        return Edit(self.site, "add", value=self.alpha * v, positions=self.positions)
