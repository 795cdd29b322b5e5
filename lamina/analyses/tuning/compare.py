"""Concordance of two tune runs: do the per-neuron statistics of one run replicate in another?

Two runs of `lamina tune` (two halves of a corpus, two models of the same shape, two contrasts) are joined
on the neuron's name (site.layer:index); per layer and over all joined neurons:

    pearson_r, spearman_rho   of the statistic (default the primary test's t) between the runs
    n_sig_a, n_sig_b, overlap neurons significant in A, in B, in both (each run's own BH decision)
    expected_overlap, p_overlap  the overlap expected if B's significant set were drawn at random from the
                              joined neurons (n_sig_a * n_sig_b / n), and its one-sided hypergeometric p
                              (= Fisher's exact test, alternative "greater")
    jaccard, sign_agreement   overlap / union; of the overlap, the fraction with the same sign in both runs

The correlation p-values treat neurons as independent, which they are not (neurons of a layer share inputs):
read them as descriptive. The null that matters for a replication is the same comparison on labels that
carry no signal; run the two tunes on shuffled labels (or a `random:` model) and compare those.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lamina.analyses.tuning.run_folder import read_tune_run
from lamina.errors import InputError
from lamina.report.figures import pyplot, save
from lamina.report.jsonio import write_json

__all__ = ["TuneComparison", "compare_tunes", "compare_tune_runs", "concordance",
           "category_specificity", "plot_comparison", "write_comparison"]


@dataclass
class TuneComparison:
    joined: pd.DataFrame        # one row per neuron in both runs: name, layer, neuron, stat_a, stat_b, sig_a, sig_b
    per_layer: pd.DataFrame     # one row per layer: the concordance figures (module docstring)
    overall: dict               # the same figures over all joined neurons
    settings: dict = field(default_factory=dict)   # statistic, labels, the runs' descriptions, neurons unmatched

    def to_json(self) -> dict:
        return {"settings": self.settings, "overall": self.overall,
                "layers": self.per_layer.to_dict(orient="records")}


def concordance(a, b, sig_a, sig_b) -> dict:
    """The concordance figures (module docstring) of two statistic vectors and two significance masks."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    sig_a, sig_b = np.asarray(sig_a, bool), np.asarray(sig_b, bool)
    ok = np.isfinite(a) & np.isfinite(b)
    n, ka, kb = len(a), int(sig_a.sum()), int(sig_b.sum())
    both = sig_a & sig_b
    k = int(both.sum())
    union = int((sig_a | sig_b).sum())
    corr = ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(b[ok]) > 0
    return {
        "n_neurons": n, "n_finite": int(ok.sum()),
        "pearson_r": float(stats.pearsonr(a[ok], b[ok])[0]) if corr else float("nan"),
        "spearman_rho": float(stats.spearmanr(a[ok], b[ok])[0]) if corr else float("nan"),
        "n_sig_a": ka, "n_sig_b": kb, "overlap": k,
        "expected_overlap": ka * kb / n if n else float("nan"),
        "p_overlap": float(stats.hypergeom.sf(k - 1, n, ka, kb)) if n else float("nan"),
        "jaccard": k / union if union else float("nan"),
        "sign_agreement": float((np.sign(a[both]) == np.sign(b[both])).mean()) if k else float("nan"),
    }


def compare_tunes(neurons_a: pd.DataFrame, neurons_b: pd.DataFrame, statistic: str = "t",
                  labels=("A", "B"), settings_a: dict | None = None, settings_b: dict | None = None) -> TuneComparison:
    """Join two per-neuron tables (TuningResult.neurons) on the neuron's name and measure their concordance."""
    for side, df in zip(labels, (neurons_a, neurons_b)):
        missing = {"name", "layer", "neuron", "significant", statistic} - set(df.columns)
        if missing:
            raise InputError(f"run {side} has no column(s) {', '.join(sorted(missing))}; statistic must be one "
                             f"of its columns ({', '.join(c for c in df.columns if df[c].dtype.kind == 'f')})")
    cols = ["name", "layer", "neuron", statistic, "significant"]
    j = neurons_a[cols].merge(neurons_b[["name", statistic, "significant"]], on="name", suffixes=("_a", "_b"))
    if j.empty:
        raise InputError("the two runs share no neuron (site, layer and index must match): were they run on the "
                         "same site and layers?")
    j = j.rename(columns={f"{statistic}_a": "stat_a", f"{statistic}_b": "stat_b",
                          "significant_a": "sig_a", "significant_b": "sig_b"})
    j[["sig_a", "sig_b"]] = j[["sig_a", "sig_b"]].astype(bool)
    per_layer = pd.DataFrame([{"layer": L, **concordance(g["stat_a"], g["stat_b"], g["sig_a"], g["sig_b"])}
                              for L, g in j.groupby("layer", sort=True)])
    overall = concordance(j["stat_a"], j["stat_b"], j["sig_a"], j["sig_b"])
    settings = {"statistic": statistic, "labels": list(labels),
                "runs": {labels[0]: _describe(settings_a), labels[1]: _describe(settings_b)},
                "unmatched": {labels[0]: len(neurons_a) - len(j), labels[1]: len(neurons_b) - len(j)},
                "note": "correlation and overlap p-values treat neurons as independent: descriptive; compare "
                        "with the same two runs on shuffled labels or a random-weights model"}
    return TuneComparison(j, per_layer, overall, settings)


def category_specificity(result_a, result_c) -> dict:
    """A vs B beside C vs B (the same controls B): per layer the two fractions of significant neurons and the
    overlap of their significant sets (`concordance`), for tuning.json's settings and the report."""
    (a, b), (c, _) = result_a.settings["groups"], result_c.settings["groups"]
    cmp = compare_tunes(result_a.neurons, result_c.neurons, "t", (f"{a} vs {b}", f"{c} vs {b}"),
                        result_a.settings, result_c.settings)
    layers = cmp.per_layer.assign(fraction_a=lambda d: d["n_sig_a"] / d["n_neurons"],
                                  fraction_c=lambda d: d["n_sig_b"] / d["n_neurons"])
    return {"first": f"{a} vs {b}", "second": f"{c} vs {b}", "controls": b,
            "group_sizes": result_c.settings["group_sizes"],
            "overall": cmp.overall, "layers": layers.to_dict(orient="records"),
            "statement": f"specificity: {c} scored against the same controls ({b}); a fraction of {a} vs {b} that "
                         f"{c} vs {b} matches, with significant sets overlapping no more than chance "
                         "(expected_overlap, p_overlap), says the lists differ, not that the neurons are specific "
                         f"to {a}",
            "note": cmp.settings["note"]}


def _describe(settings: dict | None) -> dict:
    """The few settings that say what a run was (contrast, model, site, test, group sizes)."""
    return {k: settings[k] for k in ("contrast", "model", "site", "test", "group_sizes") if k in (settings or {})}


def compare_tune_runs(path_a, path_b, statistic: str = "t") -> TuneComparison:
    """compare_tunes on two `lamina tune --out` folders (labels: the folders' names)."""
    (na, sa), (nb, sb) = read_tune_run(path_a), read_tune_run(path_b)
    la, lb = Path(path_a).name or "A", Path(path_b).name or "B"
    if la == lb:
        la, lb = f"A: {la}", f"B: {lb}"
    return compare_tunes(na, nb, statistic, (la, lb), sa, sb)


def plot_comparison(cmp: TuneComparison, path: Path, max_layers: int = 6) -> Path:
    """Scatter of the statistic, run A against run B: all joined neurons, and a few layers apart."""
    plt = pyplot()
    j, s = cmp.joined, cmp.settings
    layers = sorted(j["layer"].unique())
    shown = [layers[i] for i in np.unique(np.linspace(0, len(layers) - 1, min(max_layers, len(layers))).astype(int))]
    panels = [("all layers", j)] + ([(f"layer {L}", j[j["layer"] == L]) for L in shown] if len(layers) > 1 else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False)
    for ax, (title, g) in zip(axes[0], panels):
        c = concordance(g["stat_a"], g["stat_b"], g["sig_a"], g["sig_b"])
        colour = np.where(g["sig_a"] & g["sig_b"], "C3", np.where(g["sig_a"] | g["sig_b"], "C1", "C7"))
        ax.scatter(g["stat_a"], g["stat_b"], s=3, c=colour, alpha=0.5)
        ax.axhline(0, color="k", lw=0.3)
        ax.axvline(0, color="k", lw=0.3)
        ax.set_title(f"{title}: rho {c['spearman_rho']:.2f}, both sig. {c['overlap']} "
                     f"(exp. {c['expected_overlap']:.1f})", fontsize=7)
        ax.set_xlabel(f"{s['statistic']}, {s['labels'][0]}", fontsize=7)
    axes[0][0].set_ylabel(f"{s['statistic']}, {s['labels'][1]}  (red: significant in both, orange: in one)",
                          fontsize=7)
    return save(fig, path, dpi=90)


def write_comparison(cmp: TuneComparison, out) -> dict[str, Path]:
    """comparison.json, per_layer.csv, joined_neurons.csv and comparison.png in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = {"json": write_json(out / "comparison.json", cmp.to_json()), "per_layer": out / "per_layer.csv",
         "joined": out / "joined_neurons.csv"}
    cmp.per_layer.to_csv(p["per_layer"], index=False)
    cmp.joined.to_csv(p["joined"], index=False)
    p["plot"] = plot_comparison(cmp, out / "comparison.png")
    return p
