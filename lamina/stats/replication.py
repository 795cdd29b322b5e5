"""The replication split: the primary test's t-map on two disjoint halves of the units, and its agreement."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.model_selection import train_test_split

from lamina.stats.checks import MIN_GROUP_SIZE, TooFewSamplesError, check_activations, check_binary
from lamina.stats.multiple import correct_pvalues
from lamina.stats.primary import PrimaryDesign, primary_test, unit_labels


@dataclass
class ReplicationSplit:
    """Agreement of the primary test's t-maps computed on two disjoint random halves of the units."""

    pearson_r: float
    spearman_rho: float
    jaccard: float  # |sig_a & sig_b| / |sig_a | sig_b|; NaN when neither half has a hit
    n_significant: tuple  # (half a, half b)
    n_overlap: int
    t_a: np.ndarray
    t_b: np.ndarray
    halves: tuple  # sample indices of (half a, half b)


def split_halves(y, design: PrimaryDesign, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices of two random halves that share no unit: whole pairs; whole levels of the first unit
    (e.g. word types; stratified by the unit's label when binary); or rows (stratified when binary)."""
    y = np.asarray(y)
    n = len(y)
    if design.paired:
        pos, neg = np.nonzero(y.astype(bool))[0], np.nonzero(~y.astype(bool))[0]
        a, b = np.array_split(np.random.default_rng(seed).permutation(len(pos)), 2)
        return np.sort(np.r_[pos[a], neg[a]]), np.sort(np.r_[pos[b], neg[b]])
    if design.clusters:
        per_unit, codes = unit_labels(y, design.clusters[0])
        strat = (per_unit >= 0.5) if design.kind == "binary" else None
        ua, _ = train_test_split(np.arange(len(per_unit)), test_size=0.5, stratify=strat, random_state=seed)
        in_a = np.isin(codes, ua)
        return np.nonzero(in_a)[0], np.nonzero(~in_a)[0]
    strat = y.astype(bool) if design.kind == "binary" else None
    a, b = train_test_split(np.arange(n), test_size=0.5, stratify=strat, random_state=seed)
    return np.sort(a), np.sort(b)


def replication_split(X, y, seed: int = 0, alpha: float = 0.05, method: str = "fdr_bh",
                      design: PrimaryDesign | None = None) -> ReplicationSplit:
    """Compare the primary test's t-maps (default: Welch t) on two random halves sharing no unit.

    Significant sets use ``method`` at ``alpha`` over all neurons within each half. Correlations
    use neurons with a finite t in both halves.
    """
    X = check_activations(X)
    design = design or PrimaryDesign()
    if design.kind == "binary":
        y = check_binary(y, X.shape[0], 2 * MIN_GROUP_SIZE, " (3 in each half)")
    a, b = split_halves(y, design, seed)
    ra, rb = (primary_test(X[h], np.asarray(y)[h], design.subset(h)) for h in (a, b))
    ta, tb = ra["t"].to_numpy(), rb["t"].to_numpy()
    ok = np.isfinite(ta) & np.isfinite(tb)
    if ok.sum() < 3:
        raise TooFewSamplesError("replication needs at least 3 neurons with a finite t in both halves")
    sa = correct_pvalues(ra["p"].to_numpy(), method, "model", alpha=alpha).reject
    sb = correct_pvalues(rb["p"].to_numpy(), method, "model", alpha=alpha).reject
    union, overlap = int((sa | sb).sum()), int((sa & sb).sum())
    return ReplicationSplit(
        pearson_r=float(stats.pearsonr(ta[ok], tb[ok])[0]),
        spearman_rho=float(stats.spearmanr(ta[ok], tb[ok])[0]),
        jaccard=overlap / union if union else float("nan"),
        n_significant=(int(sa.sum()), int(sb.sum())), n_overlap=overlap,
        t_a=ta, t_b=tb, halves=(a, b))
