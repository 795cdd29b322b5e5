"""Tuning, tested causally: ablate a layer's top-K tuned neurons against K random neurons of the same layer.

    tuned = load_tuned("runs/negation")                      the neurons table of a `lamina tune` run
    result = causal_tuning(lm, tuned, pairs, k=10, repeats=20, layers=[3, 9, 15])

For every layer: the contrast's behavioural metric (negation pairs: the change in KL(negated || affirmed)
of the next-token distributions at each sentence's final token, averaged over pairs; negative = the
negated sentence moved toward the affirmed one) when the top-K neurons are zero- or mean-ablated in both
sentences, against R draws of K random neurons of the same layer, each matched on activation variance
(drawn from the same variance decile as the tuned neuron it replaces). p = (1 + #{|random| >= |top|}) /
(R + 1). The general next-token loss change on a corpus sample is measured for the top-K (and for every
draw with `random_loss`, which multiplies the cost).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from lamina.analyses.causal.interventions import Ablate

from lamina.analyses.causal.metrics import bootstrap_ratio, edit_metrics, final_logits, kl
from lamina.edits import bind_all
from lamina.errors import InputError

EFFECT_COLUMNS = ("effect", "t", "cohens_d", "diff", "r")  # the first present ranks ties in q


def load_tuned(folder) -> tuple[pd.DataFrame, dict]:
    """(neurons table, tune settings) from a `lamina tune --out` folder, read defensively."""
    folder = Path(folder)
    table = None
    for name in ("neurons.parquet", "neurons.csv"):
        if (folder / name).is_file():
            table = pd.read_parquet(folder / name) if name.endswith("parquet") else pd.read_csv(folder / name)
            break
    if table is None:
        raise InputError(f"{folder} holds no neurons.parquet or neurons.csv; give the --out folder of `lamina tune`")
    missing = [c for c in ("layer", "neuron") if c not in table.columns]
    if missing:
        raise InputError(f"{folder}: the neurons table has no column {missing[0]}")
    settings = {}
    if (folder / "tuning.json").is_file():
        import json

        settings = json.loads((folder / "tuning.json").read_text()).get("settings", {})
    return table, settings


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


def pair_kl(lm, pairs: list[tuple[str, str]], edits=(), batch_size: int = 64) -> np.ndarray:
    """KL(negated || affirmed) of the next-token distributions at the final token, per pair [pairs]."""
    bound = bind_all(lm, edits)
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        lp = torch.log_softmax(final_logits(lm, lm.tokenize([a for a, _ in chunk] + [n for _, n in chunk]), bound).float(), -1)
        out.append(kl(lp[len(chunk):], lp[:len(chunk)]).cpu().numpy())
    return np.concatenate(out)


def site_variance(lm, site: str, pairs, batch_size: int = 64) -> np.ndarray:
    """Variance of each neuron of `site` over the real tokens of the pair sentences [width]."""
    rows = []
    for i in range(0, len(pairs), batch_size):
        texts = [t for p in pairs[i:i + batch_size] for t in p]
        rows.append(lm.capture(texts, [site]).tokens(site).flatten(1).double())
    return torch.cat(rows).var(0).numpy()


@dataclass
class CausalTuningResult:
    per_layer: pd.DataFrame     # layer, top_effect (+ interval), random band, p, loss deltas, n_significant
    draws: pd.DataFrame         # layer, draw, neurons, effect, delta_loss
    settings: dict

    def to_json(self) -> dict:
        return {"settings": self.settings, "per_layer": self.per_layer.to_dict(orient="records")}


def causal_tuning(lm, table: pd.DataFrame, pairs, site: str = "mlp_post", layers=None, k: int = 10,
                  repeats: int = 20, method: str = "zero", docs=None, loss_tokens: int = 2048, seed: int = 0,
                  batch_size: int = 64, random_loss: bool = False, progress: bool = True) -> CausalTuningResult:
    """Per layer: top-K ablation vs `repeats` variance-matched random K-neuron ablations (module docstring)."""
    if k < 1 or repeats < 1:
        raise InputError("--top and --random must be at least 1")
    layers = sorted({int(L) for L in table.layer}) if layers is None else list(layers)
    rng = np.random.default_rng(seed)
    clean = pair_kl(lm, pairs, batch_size=batch_size)
    rows, draws = [], []
    bar = tqdm(total=len(layers) * (repeats + 1), desc="causal tuning", disable=not progress)
    for layer in layers:
        name = f"{site}.{layer}"
        variance = site_variance(lm, name, pairs, batch_size)
        top, n_sig = top_neurons(table, layer, k)
        ref = None
        if method == "mean":
            from lamina.analyses.causal.interventions import reference_stats
            from lamina.data.corpus import load_corpus

            ref = reference_stats(lm, name, docs or load_corpus(), max_tokens=loss_tokens * 4)
        sets = [("top", top)] + [(f"random{r}", matched_random(variance, top, rng)) for r in range(repeats)]
        for label, neurons in sets:
            edit = Ablate(name, neurons=tuple(neurons), method=method, reference=ref)
            delta = pair_kl(lm, pairs, [edit], batch_size) - clean
            loss = None
            if docs is not None and loss_tokens and (label == "top" or random_loss):
                loss = edit_metrics(lm, [edit], docs, max_tokens=loss_tokens, n_boot=200, seed=seed).summary
            draws.append({"layer": layer, "draw": label, "neurons": " ".join(map(str, neurons)),
                          "effect": float(delta.mean()), "delta_loss": loss["delta_loss"]["value"] if loss else np.nan,
                          "_per_pair": delta})
            bar.update(1)
        d = pd.DataFrame([x for x in draws if x["layer"] == layer])
        rand = d[d.draw != "top"].effect.to_numpy()
        top_row = d[d.draw == "top"].iloc[0]
        value, lo, hi = bootstrap_ratio(top_row._per_pair, np.ones(len(pairs)), 1000, seed)
        rows.append({"layer": layer, "n_top": len(top), "n_top_significant": n_sig, "top_effect": value,
                     "top_low": lo, "top_high": hi, "random_mean": float(rand.mean()),
                     "random_low": float(np.quantile(rand, 0.025)), "random_high": float(np.quantile(rand, 0.975)),
                     "p_value": float((1 + np.sum(np.abs(rand) >= abs(value))) / (len(rand) + 1)),
                     "top_delta_loss": top_row.delta_loss,
                     "random_delta_loss": float(np.nanmean(d[d.draw != "top"].delta_loss)) if random_loss and docs is not None else np.nan,
                     "top_neurons": top_row.neurons})
    bar.close()
    settings = {"model": lm.spec, "site": site, "layers": layers, "k": k, "repeats": repeats, "method": method,
                "n_pairs": len(pairs), "clean_kl": float(clean.mean()), "seed": seed, "loss_tokens": loss_tokens,
                "metric": "mean over pairs of the change in KL(negated || affirmed) at the final token "
                          "(negative: the negated sentence's prediction moved toward the affirmed one's)"}
    return CausalTuningResult(pd.DataFrame(rows), pd.DataFrame(draws).drop(columns="_per_pair"), settings)
