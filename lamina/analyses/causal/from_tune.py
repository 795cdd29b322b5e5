"""A tune run tested causally: edit a layer's top-K tuned neurons against K random neurons of the same layer.

    neurons, settings = read_tune_run("runs/category")           (analyses/tuning/run_folder.py)
    metric = LabelledLoss(samples.texts, samples.rows, "word_type")   (causal/tune_metrics.py)
    result = causal_from_tune(lm, neurons, metric, ablate_edits("zero"), layers=[20], k=10, repeats=20)

For every layer: the metric's change (edited minus clean, one value per item: a sample, a prompt, a pair)
when the top-K neurons are edited (ablated, or steered along their difference of means), against R draws of K
random neurons of the same layer, each matched on activation variance over the metric's texts (drawn from the
same variance decile as the tuned neuron it replaces). The effect is the mean over items, its 95% interval a
bootstrap over the metric's units (words, documents, pairs, prompts); p = (1 + #{|random| >= |top|}) / (R + 1).
When the top-K effect lies within the random draws' range, the tuned neurons are not used more than random
ones by this metric: `per_layer.used` is False and `verdicts` says so in one line per layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina.analyses.causal.interventions import Ablate, Steer
from lamina.analyses.causal.metrics import bootstrap_ratio, edit_metrics
from lamina.analyses.causal.tune_metrics import PairKL
from lamina.errors import InputError

EFFECT_COLUMNS = ("effect", "t", "cohens_d", "diff", "r")  # the first present ranks ties in q


def top_neurons(table: pd.DataFrame, layer: int, k: int) -> tuple[list[int], int]:
    """The layer's K best tuned neurons (by q, then |effect|) and how many of them are significant."""
    t = table[table.layer == layer].copy()
    if t.empty:
        raise InputError(f"the tune run has no neuron at layer {layer}")
    effect = next((c for c in EFFECT_COLUMNS if c in t.columns), None)
    t["_abs"] = t[effect].abs() if effect else 0.0
    t["_q"] = t["q"].fillna(1.0) if "q" in t.columns else (t["p"] if "p" in t.columns else 1.0)
    if "significant" in t.columns:
        t["_sig"] = t["significant"].fillna(False).astype(bool)
        t = t.sort_values(["_sig", "_q", "_abs"], ascending=[False, True, False])
    else:
        t["_sig"] = False
        t = t.sort_values(["_q", "_abs"], ascending=[True, False])
    top = t.head(k)
    return [int(n) for n in top.neuron], int(top._sig.sum())


def matched_random(variance: np.ndarray, top: list[int], rng: np.random.Generator, bins: int = 10) -> list[int]:
    """K random neurons, each from the same activation-variance decile as one top neuron, none of the top."""
    rank = np.argsort(np.argsort(variance)) * bins // len(variance)      # decile of each neuron
    chosen: set[int] = set()
    excluded = set(top)
    for n in top:
        pool = [i for i in np.flatnonzero(rank == rank[n]) if i not in excluded and i not in chosen]
        if not pool:  # a decile used up: any unused neuron
            pool = [i for i in range(len(variance)) if i not in excluded and i not in chosen]
        chosen.add(int(rng.choice(pool)))
    return sorted(chosen)


def site_statistics(lm, site: str, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, float]:
    """(variance of each neuron of `site` [width], mean activation norm per token) over the texts' real tokens."""
    rows = []
    for i in range(0, len(texts), batch_size):
        rows.append(lm.capture(texts[i:i + batch_size], [site], truncate=True).tokens(site).flatten(1).double())
    x = torch.cat(rows)
    return x.var(0).numpy(), float(x.norm(dim=-1).mean())


def ablate_edits(method: str = "zero", reference=None):
    """Edits for a neuron set: ablate them (zero, or mean with a `reference(site)` callable)."""
    cache: dict = {}

    def make(site: str, neurons: list[int], layer_table: pd.DataFrame, scale: float):
        if reference is not None and site not in cache:
            cache[site] = reference(site)
        ref = cache.get(site)
        return [Ablate(site, neurons=tuple(neurons), method=method, reference=ref)]
    make.describe = f"{method}-ablating"
    make.method = method
    return make


def steer_edits(alpha: float):
    """Edits for a neuron set: add alpha x (their difference of means, at unit norm) x the site's typical norm."""
    def make(site: str, neurons: list[int], layer_table: pd.DataFrame, scale: float):
        diff = layer_table.set_index("neuron")["diff"] if "diff" in layer_table else \
            (layer_table.mean_pos - layer_table.mean_neg).set_axis(layer_table.neuron)
        width = int(layer_table.neuron.max()) + 1
        v = np.zeros(width, dtype=np.float32)
        v[neurons] = np.nan_to_num(diff.reindex(neurons).to_numpy(float))
        if not np.any(v):
            raise InputError(f"{site}: the difference of means of neurons {neurons[:5]} is zero; nothing to steer")
        return [Steer(site, v / np.linalg.norm(v) * scale, alpha=alpha)]
    make.describe = f"steering (alpha {alpha:g}) along"
    make.method = f"steer alpha {alpha:g}"
    return make


@dataclass
class CausalTuningResult:
    per_layer: pd.DataFrame     # layer, top_effect (+ interval), random band, p, used, loss deltas, n_significant
    draws: pd.DataFrame         # layer, draw, neurons, effect, delta_loss
    settings: dict

    def verdicts(self) -> list[str]:
        """One line per layer whose tuned neurons are not used more than random ones by the metric."""
        return [f"layer {r.layer}: tuned neurons are not used by this metric (top {r.n_top}: {r.top_effect:+.4g}, "
                f"within the random draws' range {r.random_min:+.4g} .. {r.random_max:+.4g})"
                for r in self.per_layer.itertuples() if not r.used]

    def to_json(self) -> dict:
        return {"settings": self.settings, "per_layer": self.per_layer.to_dict(orient="records"),
                "verdicts": self.verdicts()}


def causal_from_tune(lm, table: pd.DataFrame, metric, edits_for=None, site: str = "mlp_post", layers=None,
                     k: int = 10, repeats: int = 20, docs=None, loss_tokens: int = 2048, seed: int = 0,
                     random_loss: bool = False, n_boot: int = 1000, progress: bool = True) -> CausalTuningResult:
    """Per layer: the top-K edit vs `repeats` variance-matched random K-neuron edits (module docstring)."""
    if k < 1 or repeats < 1:
        raise InputError("--top and --random must be at least 1")
    edits_for = edits_for or ablate_edits("zero")
    metric = metric.prepare(lm)
    layers = sorted({int(L) for L in table.layer}) if layers is None else list(layers)
    rng = np.random.default_rng(seed)
    clean = metric.score(lm)
    unit_codes = pd.factorize(pd.Series(metric.units))[0]
    n_units = int(unit_codes.max()) + 1
    rows, draws = [], []
    bar = tqdm(total=len(layers) * (repeats + 1), desc="causal tuning", disable=not progress)
    for layer in layers:
        name = lm.sites([f"{site}.{layer}"])[0].name
        variance, scale = site_statistics(lm, name, metric.texts)
        layer_table = table[table.layer == layer]
        top, n_sig = top_neurons(table, layer, k)
        sets = [("top", top)] + [(f"random{r}", matched_random(variance, top, rng)) for r in range(repeats)]
        effects, per_item_top = [], None
        for label, neurons in sets:
            edits = edits_for(name, neurons, layer_table, scale)
            delta = metric.score(lm, edits) - clean
            loss = None
            if docs is not None and loss_tokens and (label == "top" or random_loss):
                loss = edit_metrics(lm, edits, docs, max_tokens=loss_tokens, n_boot=200, seed=seed).summary
            effects.append(float(delta.mean()))
            per_item_top = delta if label == "top" else per_item_top
            draws.append({"layer": layer, "draw": label, "neurons": " ".join(map(str, neurons)),
                          "effect": effects[-1], "delta_loss": loss["delta_loss"]["value"] if loss else np.nan})
            bar.update(1)
        rand = np.asarray(effects[1:])
        sums = np.bincount(unit_codes, per_item_top, n_units)     # per unit: sum of item effects, and count
        counts = np.bincount(unit_codes, minlength=n_units).astype(float)
        value, lo, hi = bootstrap_ratio(sums, counts, n_boot, seed)
        layer_draws = [d for d in draws if d["layer"] == layer]
        rows.append({"layer": layer, "n_top": len(top), "n_top_significant": n_sig, "top_effect": value,
                     "top_low": lo, "top_high": hi, "random_mean": float(rand.mean()),
                     "random_low": float(np.quantile(rand, 0.025)), "random_high": float(np.quantile(rand, 0.975)),
                     "random_min": float(rand.min()), "random_max": float(rand.max()),
                     "p_value": float((1 + np.sum(np.abs(rand) >= abs(value))) / (len(rand) + 1)),
                     "used": bool(value < rand.min() or value > rand.max()),
                     "top_delta_loss": layer_draws[0]["delta_loss"],
                     "random_delta_loss": float(np.nanmean([d["delta_loss"] for d in layer_draws[1:]]))
                     if random_loss and docs is not None else np.nan,
                     "top_neurons": " ".join(map(str, top))})
    bar.close()
    settings = {"model": lm.spec, "site": site, "layers": layers, "k": k, "repeats": repeats,
                "method": edits_for.method, "edit": edits_for.describe, "metric_name": metric.name,
                "metric": metric.describe(), "unit": metric.unit, "n_items": len(clean), "n_units": n_units,
                "clean_mean": float(clean.mean()), "seed": seed, "loss_tokens": loss_tokens,
                "interval": f"95% bootstrap over {n_units} {metric.unit} units, {n_boot} resamples, seed {seed}",
                "p_value": f"permutation p: (1 + #random draws with |effect| >= |top effect|) / ({repeats} + 1)"}
    return CausalTuningResult(pd.DataFrame(rows), pd.DataFrame(draws), settings)


def causal_tuning(lm, table: pd.DataFrame, pairs, site: str = "mlp_post", layers=None, k: int = 10,
                  repeats: int = 20, method: str = "zero", docs=None, loss_tokens: int = 2048, seed: int = 0,
                  batch_size: int = 64, random_loss: bool = False, progress: bool = True) -> CausalTuningResult:
    """The negation pairs' behaviour (KL(negated || affirmed) at the final token) under top-K vs random ablation."""
    reference = None
    if method == "mean":
        from lamina.analyses.causal.interventions import reference_stats
        from lamina.data.corpus import load_corpus

        def reference(name):
            return reference_stats(lm, name, docs or load_corpus(), max_tokens=loss_tokens * 4)
    return causal_from_tune(lm, table, PairKL(pairs, batch_size), ablate_edits(method, reference), site, layers, k,
                            repeats, docs, loss_tokens, seed, random_loss, progress=progress)
