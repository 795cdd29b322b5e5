"""Top examples by data sampling: stream a corpus and keep, per neuron, the text that makes it fire.

    documents ──► windows of `context` tokens ──► batches [b, t] ──► capture the neurons' sites
                  (one pass, early stop after the deepest site) ──► per neuron a [b, t] (NaN where not counted)
        per document:  its max and where it is      -> top-k examples, one per document
        a reservoir:   bottom-R random keys          -> a uniform sample of tokens: the random examples, the
                                                        quantile edges and the examples per quantile bin
        per batch:     the token at the argmax       -> the tally of top tokens
        running:       count, sum, max, min
    The windows holding the chosen tokens then run once more, so every shown token has its activation.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from lamina.data.corpus import Document
from lamina.data.windows import batches, corpus_windows, split_row_id
from lamina.errors import InputError
from lamina.models.language_model import check_neuron_index


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
                 batch_size: int = 8, max_tokens: int | None = None, n_random: int = 10, n_quantiles: int = 10,
                 per_quantile: int = 2, reservoir: int = 4096, before: int = 24, after: int = 8, seed: int = 0,
                 progress: bool = True) -> TopExamples:
    """Stream `docs` once; per neuron the top-k examples (one per document), random and per-quantile samples."""
    if not neurons:
        raise InputError("give at least one --neuron SITE:INDEX")
    if min(k, batch_size, reservoir) < 1 or min(n_random, n_quantiles, per_quantile, before, after) < 0:
        raise InputError("-k, --batch-size and the reservoir must be at least 1; sample counts at least 0")
    t0 = time.perf_counter()
    targets = {}
    for text in neurons:
        site, index = lm.neuron(text)
        check_neuron_index(site, index, lm.site_widths([site])[site.name])
        targets[f"{site.name}:{index}"] = (site, index)
    sites = list({s.name: s for s, _ in targets.values()}.values())
    windows = corpus_windows(lm, docs, context, max_tokens=max_tokens)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
    g = torch.Generator().manual_seed(seed)
    trackers = {name: NeuronTracker(reservoir, g) for name in targets}
    n_batches = (len(windows) + batch_size - 1) // batch_size
    for batch in tqdm(batches(windows, batch_size, pad), total=n_batches, desc="top examples", disable=not progress):
        acts = lm.capture(lm.inputs(batch.input_ids, batch.attention_mask), sites)
        for name, (site, index) in targets.items():
            a = acts[site.name].flatten(2)[..., index].double().cpu()           # [b, t]
            trackers[name].update(a.masked_fill(~batch.count, float("nan")), batch.row_ids, batch.input_ids)
    stream_seconds = time.perf_counter() - t0
    picks = {name: {"top": tr.top(k), "random": tr.random(n_random),
                    "quantiles": tr.quantile_bins(n_quantiles, per_quantile) if per_quantile else []}
             for name, tr in trackers.items()}
    rows = {r for p in picks.values() for r in [x[1] for x in p["top"] + p["random"]]
            + [x[1] for b in p["quantiles"] for x in b["picks"]]}
    shown = Shown(lm, docs, windows, before, after)
    shown.run(rows, targets, sites, batch_size, pad)
    result = TopExamples(lm.spec, dict(k=k, context=context, batch_size=batch_size, max_tokens=max_tokens,
                                       n_random=n_random, n_quantiles=n_quantiles, per_quantile=per_quantile,
                                       reservoir=reservoir, seed=seed, n_docs=len(docs), n_windows=len(windows)))
    for name, tr in trackers.items():
        p = picks[name]
        result.neurons[name] = {
            "neuron": name, "n_tokens": tr.n, "mean": tr.total / tr.n if tr.n else None,
            "max": tr.max if tr.n else None, "min": tr.min if tr.n else None,
            "top": [shown.example(name, v, r) for v, r in p["top"]],
            "random": [shown.example(name, v, r) for v, r in p["random"]],
            "quantiles": [{**{k_: v_ for k_, v_ in b.items() if k_ != "picks"},
                           "examples": [shown.example(name, v, r) for v, r in b["picks"]]} for b in p["quantiles"]],
            "argmax_tally": [{"token_id": t, "token": lm.tokenizer.decode([t]), "batches": c}
                             for t, c in tr.tally.most_common()],
            "n_batches": n_batches,
        }
    result.settings.update(stream_seconds=stream_seconds, seconds=time.perf_counter() - t0)
    return result


class Shown:
    """The windows behind chosen tokens, run once more so every shown token carries its activation."""

    def __init__(self, lm, docs: list[Document], windows, before: int, after: int):
        self.lm, self.docs, self.windows, self.before, self.after = lm, docs, windows, before, after
        self.by_doc: dict[int, list[int]] = {}                                 # doc -> its window indices
        for i, w in enumerate(windows):
            self.by_doc.setdefault(w.doc, []).append(i)
        self.acts: dict[tuple[int, str], list[float]] = {}                     # (window, neuron) -> [t]

    def window_of(self, doc: int, pos: int) -> int:
        """Index of the window that counted token `pos` of document `doc`."""
        for i in self.by_doc[doc]:
            w = self.windows[i]
            if w.start + w.first_counted <= pos < w.start + len(w.ids):
                return i
        raise KeyError((doc, pos))

    def run(self, rows, targets: dict, sites, batch_size: int, pad: int) -> None:
        """Capture the neurons over every window holding one of `rows`."""
        needed = sorted({self.window_of(*split_row_id(r)) for r in rows})
        for start in range(0, len(needed), batch_size):
            chosen = needed[start:start + batch_size]
            batch = next(batches([self.windows[i] for i in chosen], len(chosen), pad))
            acts = self.lm.capture(self.lm.inputs(batch.input_ids, batch.attention_mask), sites)
            for name, (site, index) in targets.items():
                a = acts[site.name].flatten(2)[..., index].double().cpu()       # [b, t]
                for b, w in enumerate(chosen):
                    self.acts[(w, name)] = a[b, :len(self.windows[w].ids)].tolist()

    def example(self, name: str, value: float, row: int) -> dict:
        """One example: the tokens around the chosen one, each with the neuron's activation."""
        doc, pos = split_row_id(row)
        w = self.window_of(doc, pos)
        ids = self.windows[w].ids
        focus = pos - self.windows[w].start                                    # index in the window
        lo, hi = max(0, focus - self.before), min(len(ids), focus + self.after + 1)
        decode = self.lm.tokenizer.decode
        return {"doc": self.docs[doc].id, "position": pos, "value": value, "token": decode([ids[focus]]),
                "tokens": [decode([i]) for i in ids[lo:hi]], "activations": self.acts[(w, name)][lo:hi],
                "focus": focus - lo}
