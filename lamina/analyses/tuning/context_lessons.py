"""Context and length lessons: what a neuron's response to a token owes to its context and its length.

    context_effect   the same word alone vs in a sentence, and alone with vs without a leading space:
                     Pearson correlation of the two activation vectors (all neurons of a layer) per word,
                     summarised per layer, beside a baseline of two different words alone
    length_lessons   activation histograms by token length group (below, at, above the median character
                     length) per layer, and the distribution of per-neuron length correlations per layer
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lamina.analyses.sources.model import ModelSource
from lamina.analyses.tuning.contrasts import SampleSet, builtin_file, encode_text, read_lines, span_positions
from lamina.errors import InputError
from lamina.sites import parse_layers

LENGTH_GROUPS = ("below median", "at median", "above median")


# --------------------------------------------------------------------------- token length
def length_groups(char_len) -> tuple[np.ndarray, float]:
    """Group label per token (below / at / above the median character length) and the median."""
    c = np.asarray(char_len, dtype=float)
    m = float(np.median(c))
    return np.where(c < m, LENGTH_GROUPS[0], np.where(c > m, LENGTH_GROUPS[2], LENGTH_GROUPS[1])), m


def length_lessons(acts: dict, char_len, neurons: pd.DataFrame | None = None, bins: int = 40,
                   max_values: int = 400_000, seed: int = 0) -> dict:
    """Histograms of activations by length group per layer, and per-neuron length correlations per layer.

    `acts`: {layer: [n_tokens, n_neurons]}; `neurons`: the tuning table (its `r` column) if already
    computed, else Pearson r is computed here. Histograms pool all neurons' values of a layer (a random
    subset of at most `max_values` per group), on bins spanning the layer's 0.5-99.5th percentiles.
    """
    groups, median = length_groups(char_len)
    rng = np.random.default_rng(seed)
    hist_rows, r_rows, r_hist = [], [], []
    edges_r = np.linspace(-1, 1, bins + 1)
    c = np.asarray(char_len, dtype=float)
    for L, X in acts.items():
        X = np.asarray(X, dtype=np.float32)
        flat = X.ravel()
        sample = flat if flat.size <= max_values else flat[rng.choice(flat.size, max_values, replace=False)]
        lo, hi = np.percentile(sample, [0.5, 99.5])
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        for g in LENGTH_GROUPS:
            vals = X[groups == g].ravel()
            if vals.size == 0:
                continue
            if vals.size > max_values:
                vals = vals[rng.choice(vals.size, max_values, replace=False)]
            counts, _ = np.histogram(np.clip(vals, edges[0], edges[-1]), edges)
            for k in range(bins):
                hist_rows.append({"layer": L, "group": g, "bin_left": edges[k], "bin_right": edges[k + 1],
                                  "density": counts[k] / vals.size, "n_tokens": int((groups == g).sum())})
        if neurons is not None and "r" in neurons:
            r = neurons.loc[neurons["layer"] == L, "r"].to_numpy()
        else:
            Xc = X - X.mean(0)
            cc = c - c.mean()
            with np.errstate(all="ignore"):
                r = (cc @ Xc) / (np.linalg.norm(Xc, axis=0) * np.linalg.norm(cc))
        ok = r[np.isfinite(r)]
        q = np.percentile(ok, [5, 25, 50, 75, 95]) if ok.size else [np.nan] * 5
        r_rows.append({"layer": L, "r_q05": q[0], "r_q25": q[1], "r_median": q[2], "r_q75": q[3], "r_q95": q[4],
                       "mean_abs_r": float(np.abs(ok).mean()) if ok.size else np.nan,
                       "fraction_positive": float((ok > 0).mean()) if ok.size else np.nan})
        counts, _ = np.histogram(ok, edges_r)
        r_hist += [{"layer": L, "bin_left": edges_r[k], "bin_right": edges_r[k + 1], "count": int(counts[k])}
                   for k in range(bins)]
    sizes = {g: int((groups == g).sum()) for g in LENGTH_GROUPS}
    return {"median_char_len": median, "group_sizes": sizes, "histograms": pd.DataFrame(hist_rows),
            "r_quantiles": pd.DataFrame(r_rows), "r_histogram": pd.DataFrame(r_hist)}


# --------------------------------------------------------------------------- context
@dataclass
class ContextResult:
    per_word: pd.DataFrame      # layer, word, comparison, r
    per_layer: pd.DataFrame     # layer, comparison, mean_r, median_r, n
    settings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"settings": self.settings, "layers": self.per_layer.to_dict(orient="records")}


COMPARISONS = {
    "alone vs in context": ("alone_space", "context"),
    "leading space vs none (alone)": ("alone_space", "alone_bare"),
    "two different words alone (baseline)": ("alone_space", "other_space"),
}


def default_context_items(max_items: int = 40) -> list[tuple[str, str]]:
    """(word, sentence) pairs from the built-in category lists (the first sentence holding each word),
    alternating dental and household words so that a small `max_items` holds both."""
    lists = []
    for words_file, sentences_file in (("dental_words.txt", "dental_sentences.txt"),
                                       ("household_words.txt", "household_sentences.txt")):
        sentences = read_lines(builtin_file(sentences_file), "sentences")
        items = []
        for w in read_lines(builtin_file(words_file), "words"):
            hit = next((s for s in sentences if re.search(rf"(?<=\s){re.escape(w)}\b", s)), None)
            if hit:
                items.append((w, hit))
        lists.append(items)
    a, b = lists
    out = [x for pair in zip(a, b) for x in pair] + a[len(b):] + b[len(a):]
    return out[:max_items]


def context_effect(lm, items: list[tuple[str, str]] | None = None, site: str = "mlp_post", layers=None,
                   batch_size: int = 8, carrier: str = "") -> ContextResult:
    """Correlation per layer between a word's activation vectors in two conditions (see COMPARISONS).

    Each word is read at its last sub-token: alone with a leading space (" word", as mid-sentence),
    alone bare ("word"), in its sentence (the word must appear there after a space), and, as a baseline,
    the next word of the list alone with a leading space.
    `carrier`: a neutral prefix put before every "alone" text (for example "A word:\\n"), so that the word is
    not the first token (position 0 is the attention sink, alike for every token).
    """

    items = items or default_context_items()
    if len(items) < 2:
        raise InputError("the context lesson needs at least 2 (word, sentence) items")
    tok = lm.tokenizer
    texts, rows, skipped = [], [], []
    for j, (word, sentence) in enumerate(items):
        m = re.search(rf"(?<=\s){re.escape(word)}\b", sentence)
        if not m:
            skipped.append(word)
            continue
        other = items[(j + 1) % len(items)][0]
        c = len(carrier)
        for cond, text, span in (("alone_space", carrier + " " + word, (c + 1, c + 1 + len(word))),
                                 ("alone_bare", carrier + word, (c, c + len(word))),
                                 ("other_space", carrier + " " + other, (c + 1, c + 1 + len(other))),
                                 ("context", sentence, (m.start(), m.end()))):
            ids, offsets, special = encode_text(tok, text, 512)
            pos = span_positions(offsets, special, *span)
            rows.append({"text": len(texts), "positions": (pos[-1],), "word": word, "condition": cond,
                         "n_subtokens": len(pos)})
            texts.append(text)
    if skipped:
        raise InputError(f"{len(skipped)} words do not appear after a space in their sentence: "
                         f"{', '.join(skipped[:5])}")
    samples = SampleSet("context", texts, pd.DataFrame(rows), "context", None, "context", "last sub-token",
                        max_length=512)
    layer_ids = parse_layers(layers, lm.n_layers)
    sites = lm.sites([f"{site}.{L}" for L in layer_ids])
    acts = ModelSource(lm).activations(samples, sites, batch_size)
    df = samples.rows
    out = []
    for L, s in zip(layer_ids, sites):
        X = acts[s.name].astype(float)
        for word, g in df.groupby("word", sort=False):
            idx = dict(zip(g["condition"], g.index))
            for name, (a, b) in COMPARISONS.items():
                r = np.corrcoef(X[idx[a]], X[idx[b]])[0, 1]
                out.append({"layer": L, "word": word, "comparison": name, "r": r})
    per_word = pd.DataFrame(out)
    per_layer = (per_word.groupby(["layer", "comparison"], sort=False)["r"]
                 .agg(mean_r="mean", median_r="median", n="count").reset_index())
    split = df[(df["condition"] == "alone_space") & (df["n_subtokens"] > 1)]["word"].tolist()
    bare_split = df[(df["condition"] == "alone_bare") & (df["n_subtokens"] > 1)]["word"].tolist()
    bos = len(tok("a")["input_ids"]) > len(tok("a", add_special_tokens=False)["input_ids"])
    settings = {"model": lm.spec, "site": site, "layers": layer_ids, "n_words": len(items), "carrier": carrier,
                "alone_position": (f"after the carrier prefix {carrier!r}" if carrier else
                                   "after the BOS token the tokenizer adds" if bos else
                                   "position 0 (the tokenizer adds no BOS): the first-token state, alike for all "
                                   "tokens, which the baseline shows"),
                "reading": "the word's last sub-token in every condition",
                "statistic": "Pearson correlation across the layer's neurons between the two activation vectors",
                "multi_token_with_space": split, "multi_token_bare": bare_split}
    return ContextResult(per_word, per_layer, settings)
