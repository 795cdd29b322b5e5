"""The permutation null of the count of significant neurons, at the design's unit of replication.

One implementation for `lamina tune` and for direct use: `label_draws` (the null labellings: labels
permuted among word types / paragraphs, sign flips for pairs, rows for independent samples) ->
`null_pvalues` (the primary test under each) -> `count_per_layer` (the corrected count per layer).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lamina.stats.checks import check_activations, check_binary
from lamina.stats.multiple import correct_pvalues, count_significant
from lamina.stats.primary import PrimaryDesign, label_draws, null_pvalues, primary_test


def count_per_layer(p_rows: list[np.ndarray], family: str, alpha: float, method: str = "fdr_bh") -> np.ndarray:
    """Significant counts per layer for one labelling: p_rows[layer] = p-values of its tested neurons,
    corrected within each layer (family 'layer') or over all of them together ('model')."""
    if family == "layer":
        return np.array([count_significant(p, alpha, method) if p.size else 0 for p in p_rows])
    flat = np.concatenate(p_rows)
    reject = correct_pvalues(flat, method, "model", alpha=alpha).reject
    bounds = np.cumsum([0] + [p.size for p in p_rows])
    return np.array([int(reject[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])])


def null_band(counts: np.ndarray, observed: int) -> dict:
    """Mean, central 95% band and permutation p of a null distribution of counts."""
    lo, hi = np.percentile(counts, [2.5, 97.5])
    return {"mean": float(np.mean(counts)), "low": float(lo), "high": float(hi),
            "p_value": float((1 + np.sum(counts >= observed)) / (1 + len(counts)))}


@dataclass
class PermutationNull:
    """Observed count of significant neurons against its label-permutation null distribution."""

    observed: int
    null_counts: np.ndarray
    band: tuple  # central 95% interval of null_counts (2.5th, 97.5th percentile)
    p_value: float  # (1 + #{null >= observed}) / (1 + n_permutations)
    alpha: float
    method: str
    paired: bool
    unit: str = "occurrence"


def permutation_null(X, y, n_permutations: int = 200, alpha: float = 0.05, method: str = "fdr_bh",
                     seed: int = 0, paired: bool = False, design: PrimaryDesign | None = None) -> PermutationNull:
    """Null distribution of the count of significant neurons (primary test, `method` over all neurons
    given) under `n_permutations` null labellings at the design's unit (default: Welch t, rows permuted;
    `paired=True`: paired t, signs flipped within pairs). Neurons with a NaN observed p are left out."""
    X = check_activations(X)
    design = design or PrimaryDesign(paired=paired)
    if design.kind == "binary":
        y = check_binary(y, X.shape[0])
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    observed_p = primary_test(X, y, design)["p"].to_numpy()
    keep = ~np.isnan(observed_p)
    if not keep.any():
        raise ValueError("no neuron has a defined test (all are constant)")
    observed = count_significant(observed_p[keep], alpha, method)
    P = null_pvalues(X[:, keep], y, design, label_draws(y, design, n_permutations, seed))
    null = np.array([count_significant(row[~np.isnan(row)], alpha, method) for row in P])
    band = null_band(null, observed)
    return PermutationNull(observed, null, (band["low"], band["high"]), band["p_value"], alpha, method,
                           design.paired, design.unit())
