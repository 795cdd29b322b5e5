"""Top examples by data sampling: stream a corpus and keep, per neuron, the text that makes it fire.

    documents ──► windows of `context` tokens ──► batches [b, t] ──► capture the neurons' sites
                  (one pass, early stop after the deepest site) ──► per neuron a [b, t] (NaN where not counted)
        per document:  its max and where it is      -> top-k examples, one per document
        a reservoir:   bottom-R random keys          -> a uniform sample of tokens: the random examples, the
                                                        quantile edges and the examples per quantile bin
        per batch:     the token at the argmax       -> the tally of top tokens
        running:       count, sum, max, min
    The windows holding the chosen tokens then run once more (or are read from the store), so every shown
    token has its activation. Activations come from a source (analyses/sources/): the model, or a store.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from lamina import validate
from lamina.analyses.sources.model import ModelSource
from lamina.data.corpus import Document
from lamina.data.windows import read_counts, split_row_id
from lamina.errors import InputError


class NeuronTracker:
    """Streaming state for one neuron: per-document maxima, a random reservoir, the argmax tally, totals."""

    def __init__(self, reservoir: int, generator: torch.Generator):
        self.doc_best: dict[int, tuple[float, int]] = {}      # doc -> (max value, row id)
        self.size, self.g = reservoir, generator
        self.keys = torch.empty(0)                             # [<=R] random keys (smallest kept)
        self.values = torch.empty(0, dtype=torch.float64)      # [<=R]
        self.rows = torch.empty(0, dtype=torch.long)           # [<=R]
        self.tally: Counter = Counter()
        self.n, self.total, self.max, self.min = 0, 0.0, -float("inf"), float("inf")

    def update(self, a: torch.Tensor, rows: torch.Tensor, input_ids: torch.Tensor) -> None:
        """a [b, t] float64 with NaN where not counted; rows, input_ids [b, t]."""
        seen = ~a.isnan()
        if not bool(seen.any()):
            return
        filled = a.masked_fill(~seen, -float("inf"))
        best, where = filled.max(1)                                            # per window: [b]
        for b in range(a.shape[0]):
            if bool(seen[b].any()):
                doc = split_row_id(int(rows[b, where[b]]))[0]
                if float(best[b]) > self.doc_best.get(doc, (-float("inf"), -1))[0]:
                    self.doc_best[doc] = (float(best[b]), int(rows[b, where[b]]))
        flat = int(filled.flatten().argmax())
        self.tally[int(input_ids.flatten()[flat])] += 1                        # the batch's argmax token
        vals, ids = a[seen], rows[seen]                                        # [m]
        self.n += vals.numel()
        self.total += float(vals.sum())
        self.max, self.min = max(self.max, float(vals.max())), min(self.min, float(vals.min()))
        keys = torch.cat([self.keys, torch.rand(vals.numel(), generator=self.g)])
        keep = keys.topk(min(self.size, keys.numel()), largest=False).indices
        self.keys, self.values = keys[keep], torch.cat([self.values, vals])[keep]
        self.rows = torch.cat([self.rows, ids])[keep]

    def top(self, k: int) -> list[tuple[float, int]]:
        return sorted(self.doc_best.values(), reverse=True)[:k]

    def random(self, k: int) -> list[tuple[float, int]]:
        order = self.keys.argsort()[:k]                                        # smallest keys: uniform
        return list(zip(self.values[order].tolist(), self.rows[order].tolist()))

    def quantile_bins(self, n_bins: int, per_bin: int) -> list[dict]:
        """Edges from the reservoir's quantiles; per bin, `per_bin` random reservoir tokens inside it."""
        if self.values.numel() == 0:
            return []
        edges = torch.quantile(self.values, torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)).tolist()
        values, rows = self.values.tolist(), self.rows.tolist()
        order = self.keys.argsort().tolist()                                   # random order
        bins = []
        for i in range(n_bins):
            lo, hi = edges[i], edges[i + 1]
            last = i == n_bins - 1                                             # [lo, hi) except the last
            inside = [j for j in order if lo <= values[j] and (values[j] < hi or (last and values[j] <= hi))]
            bins.append({"bin": i, "q_lo": i / n_bins, "q_hi": (i + 1) / n_bins, "lo": lo, "hi": hi,
                         "picks": [(values[j], rows[j]) for j in inside[:per_bin]]})
        return bins


@dataclass
class TopExamples:
    model: str
    settings: dict
    neurons: dict[str, dict] = field(default_factory=dict)   # "SITE:INDEX" -> summary and examples

    def to_dict(self) -> dict:
        return {"model": self.model, "settings": self.settings, "neurons": self.neurons}


def top_examples(lm, neurons: list[str], docs: list[Document], k: int = 10, context: int = 64,
                 batch_size: int = 8, max_tokens: int | None = None, **options) -> TopExamples:
    """Stream `docs` through `lm` once; per neuron the top-k examples (one per document), random and
    per-quantile samples. `options` are those of `top_examples_from`."""
    from lamina.models.registry import as_model

    lm = as_model(lm)
    return top_examples_from(ModelSource(lm, docs, context, max_tokens=max_tokens), neurons, k=k,
                             batch_size=batch_size, max_tokens=max_tokens, **options)


def top_examples_from(source, neurons: list[str], k: int = 10, batch_size: int = 8, max_tokens: int | None = None,
                      n_random: int = 10, n_quantiles: int = 10, per_quantile: int = 2, reservoir: int = 4096,
                      before: int = 24, after: int = 8, seed: int = 0, progress: bool = True) -> TopExamples:
    """Top examples from a source of activations: a live model (`ModelSource`) or a store (`StoreSource`)."""
    if not neurons:
        raise InputError("give at least one --neuron SITE:INDEX")
    for name, value in (("k", k), ("batch_size", batch_size), ("reservoir", reservoir)):
        validate.integer(name, value)
    for name, value in (("n_random", n_random), ("n_quantiles", n_quantiles), ("per_quantile", per_quantile),
                        ("before", before), ("after", after)):
        validate.integer(name, value, low=0)
    t0 = time.perf_counter()
    targets = {}
    for text in neurons:
        site, index = source.neuron(text)
        targets[f"{site}:{index}"] = (site, index)
    sites = list(dict.fromkeys(site for site, _ in targets.values()))
    columns = {s: sorted({i for site, i in targets.values() if site == s}) for s in sites}  # read only these
    g = torch.Generator().manual_seed(seed)
    trackers = {name: NeuronTracker(reservoir, g) for name in targets}
    n_batches = (len(source.windows) + batch_size - 1) // batch_size
    for batch, counted in tqdm(source.stream(sites, batch_size, columns), total=n_batches, desc="top examples",
                               disable=not progress):
        for name, (site, index) in targets.items():
            a = torch.full(batch.count.shape, float("nan"), dtype=torch.float64)  # [b, t], NaN where not counted
            a[batch.count] = counted[site][:, columns[site].index(index)].double()
            trackers[name].update(a, batch.row_ids, batch.input_ids)
    stream_seconds = time.perf_counter() - t0
    picks = {name: {"top": tr.top(k), "random": tr.random(n_random),
                    "quantiles": tr.quantile_bins(n_quantiles, per_quantile) if per_quantile else []}
             for name, tr in trackers.items()}
    rows = {r for p in picks.values() for r in [x[1] for x in p["top"] + p["random"]]
            + [x[1] for b in p["quantiles"] for x in b["picks"]]}
    shown = Shown(source, before, after)
    shown.run(rows, targets, sites, columns, batch_size)
    counts = read_counts(source.windows, len(source.doc_ids))   # what was read, not the corpus's size
    result = TopExamples(source.spec, dict(k=k, context=source.context, batch_size=batch_size, max_tokens=max_tokens,
                                           n_random=n_random, n_quantiles=n_quantiles, per_quantile=per_quantile,
                                           reservoir=reservoir, seed=seed, n_docs=counts["documents_read"],
                                           n_docs_corpus=len(source.doc_ids), n_tokens_read=counts["tokens_read"],
                                           n_windows=len(source.windows), notes=[]))
    result.settings.update(source.provenance())
    decode = source.tokenizer.decode
    for name, tr in trackers.items():
        p = picks[name]
        result.neurons[name] = {
            "neuron": name, "n_tokens": tr.n, "mean": tr.total / tr.n if tr.n else None,
            "max": tr.max if tr.n else None, "min": tr.min if tr.n else None,
            "top": [shown.example(name, v, r) for v, r in p["top"]],
            "random": [shown.example(name, v, r) for v, r in p["random"]],
            "quantiles": [{**{k_: v_ for k_, v_ in b.items() if k_ != "picks"},
                           "examples": [shown.example(name, v, r) for v, r in b["picks"]]} for b in p["quantiles"]],
            "argmax_tally": [{"token_id": t, "token": decode([t]), "batches": c}
                             for t, c in tr.tally.most_common()],
            "n_batches": n_batches,
        }
        if len(p["top"]) < k:
            note = fewer_than_asked(name, len(p["top"]), k, counts)
            result.neurons[name]["short"] = note
            result.settings["notes"].append(note)
    result.settings.update(stream_seconds=stream_seconds, seconds=time.perf_counter() - t0)
    return result


def fewer_than_asked(name: str, got: int, k: int, counts: dict) -> str:
    """Why a neuron has fewer top examples than asked: one per document, and only so many documents were read."""
    where = f"the first {counts['tokens_read']:,} tokens"   # the same from a store as from the model that filled it
    if counts["documents_read"] <= got:
        why = f"only {counts['documents_read']} documents in {where} (top examples are one per document)"
    else:
        why = f"only {got} documents of the {counts['documents_read']} read have a counted token"
    return f"{name}: {got} of {k}: {why}"


class Shown:
    """The windows behind chosen tokens, read once more so every shown token carries its activation."""

    def __init__(self, source, before: int, after: int):
        self.source, self.before, self.after = source, before, after
        self.acts: dict[tuple[int, str], list[float]] = {}                     # (window, neuron) -> [t]

    def run(self, rows, targets: dict, sites, columns: dict, batch_size: int) -> None:
        """The neurons' values over every window holding one of `rows`."""
        needed = sorted({self.source.window_of(*split_row_id(r)) for r in rows})
        for w, acts in self.source.window_values(needed, sites, columns, batch_size):
            for name, (site, index) in targets.items():
                self.acts[(w, name)] = acts[site][:, columns[site].index(index)].double().tolist()

    def example(self, name: str, value: float, row: int) -> dict:
        """One example: the tokens around the chosen one, each with the neuron's activation."""
        doc, pos = split_row_id(row)
        w = self.source.window_of(doc, pos)
        window = self.source.windows[w]
        ids = window.ids
        focus = pos - window.start                                             # index in the window
        lo, hi = max(0, focus - self.before), min(len(ids), focus + self.after + 1)
        decode = self.source.tokenizer.decode
        return {"doc": self.source.doc_ids[doc], "position": pos, "value": value, "token": decode([ids[focus]]),
                "tokens": [decode([i]) for i in ids[lo:hi]], "activations": self.acts[(w, name)][lo:hi],
                "focus": focus - lo}
