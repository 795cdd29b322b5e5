"""The permutation null at the design's unit of replication: of the count of significant neurons, and of each
neuron's p (randomization inference).

One implementation for `lamina tune` and for direct use: `label_draws` (the null labellings: labels permuted
among word types / paragraphs, sign flips for pairs, rows for independent samples) -> `null_pvalues` (the
primary test under each) -> `null_counts` (the corrected count per layer, per draw) or `permutation_pvalues`
(each neuron's p among the draws).

The NaN-p rule, the same on every path: the family is the neurons with a defined observed test (a neuron
constant over the samples has no hypothesis to test: it is left out of the family and of the null, and the
run reports how many were tested). The null keeps that family fixed in every draw: a tested neuron whose
statistic is undefined under one labelling counts as p = 1 there (not rejected). A draw that no neuron can be
tested under (its label constant, or explained by the controls) failed: it is left out of the null and counted
(`n_failed`), never dropped silently.
"""
from __future__ import annotations

import math
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


def null_counts(P_layers: list[np.ndarray], family: str, alpha: float, method: str = "fdr_bh"):
    """(counts [n_ok_draws, n_layers], n_failed) from P_layers[layer] = [n_draws, n_tested] null p-values of
    each layer's tested neurons (module doc: undefined p -> 1; a draw undefined for every neuron failed)."""
    n_draws = len(P_layers[0]) if P_layers else 0
    failed = np.ones(n_draws, dtype=bool)
    for P in P_layers:
        if P.shape[1]:
            failed &= np.isnan(P).all(1)
    counts = [count_per_layer([np.nan_to_num(P[i], nan=1.0) for P in P_layers], family, alpha, method)
              for i in range(n_draws) if not failed[i]]
    return np.array(counts, dtype=int).reshape(-1, len(P_layers)), int(failed.sum())


def null_band(counts: np.ndarray, observed: int) -> dict:
    """Mean, central 95% band and permutation p of a null distribution of counts."""
    if len(counts) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "p_value": float("nan")}
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
    n_tested: int = 0   # the family: neurons with a defined observed test
    n_failed: int = 0   # null draws that no neuron could be tested under (left out of null_counts)


def permutation_null(X, y, n_permutations: int = 200, alpha: float = 0.05, method: str = "fdr_bh",
                     seed: int = 0, paired: bool = False, design: PrimaryDesign | None = None) -> PermutationNull:
    """Null distribution of the count of significant neurons (primary test, `method` over the tested neurons)
    under `n_permutations` null labellings at the design's unit (default: Welch t, rows permuted;
    `paired=True`: paired t, signs flipped within pairs). The NaN-p rule of the module doc."""
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
    null, failed = null_counts([P], "model", alpha, method)
    band = null_band(null[:, 0], observed)
    return PermutationNull(observed, null[:, 0], (band["low"], band["high"]), band["p_value"], alpha, method,
                           design.paired, design.unit(), int(keep.sum()), failed)


# --------------------------------------------------------------------------- randomization inference
def permutations_for(n_family: int, alpha: float) -> int:
    """Draws B such that the smallest attainable p, 1 / (B + 1), is at most BH's first threshold alpha / m."""
    return max(1, math.ceil(n_family / alpha) - 1)


@dataclass
class PermutationPValues:
    """Each neuron's randomization p at the design's unit: (1 + #{draws with p* <= p}) / (1 + n_ok)."""

    p: np.ndarray          # [n_neurons]; NaN where the observed test is undefined
    n_draws: int           # draws used (n_ok)
    n_failed: int          # draws no neuron could be tested under
    n_labellings: float    # distinct labellings the design has (inf when too many to count)


def distinct_labellings(y, design: PrimaryDesign) -> float:
    """How many different null labellings the design has: 2^pairs, C(units, positive units), or C(n, n_pos)
    (continuous labels: the permutations of the unit values)."""
    from lamina.stats.primary import unit_labels

    y = np.asarray(y)
    if design.paired:
        n = int(y.astype(bool).sum())
        return float(2 ** n) if n < 1000 else math.inf
    per = unit_labels(y, design.clusters[0])[0] if design.clusters else y.astype(float)
    if design.kind == "binary":
        per = per >= 0.5
        count = math.comb(len(per), int(per.sum()))
    else:
        count = math.factorial(len(per)) if len(per) < 170 else math.inf
    return float(count) if count < 1e300 else math.inf


def permutation_pvalues(X, y, design: PrimaryDesign, n_permutations: int, seed: int = 0,
                        chunk: int = 200) -> PermutationPValues:
    """Per-neuron p from the primary test's own p under `n_permutations` null labellings at the unit (the
    statistic is the analytic p, so designs whose df change with the labelling compare like with like).
    Draws are made and tested in chunks: memory stays [chunk, n_samples + n_neurons]."""
    X = check_activations(X)
    observed = primary_test(X, y, design)["p"].to_numpy()
    keep = ~np.isnan(observed)
    hits, used, failed = np.zeros(int(keep.sum())), 0, 0
    for start in range(0, n_permutations, chunk):
        draws = label_draws(y, design, min(chunk, n_permutations - start), seed + start)
        P = null_pvalues(X[:, keep], y, design, draws)
        bad = np.isnan(P).all(1)
        failed += int(bad.sum())
        P = np.nan_to_num(P[~bad], nan=1.0)
        hits += (P <= observed[keep] * (1 + 1e-12)).sum(0)
        used += len(P)
    p = np.full(X.shape[1], np.nan)
    p[keep] = (1 + hits) / (1 + used)
    return PermutationPValues(p, used, failed, distinct_labellings(y, design))
