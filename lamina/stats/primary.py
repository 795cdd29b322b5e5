"""The primary per-neuron test of a design, at its unit of replication, and the labels its null draws.

Three designs (`PrimaryDesign`):
    clustered   samples repeat units (word types, paragraphs): OLS slope of activation on the label (+ the
                design's controls) with one- or two-way cluster-robust SEs (`lamina.stats.clustered`: CR2 with
                Bell-McCaffrey df by default, `vcov="CR1"` the old test); the null permutes the label among the
                first unit's levels (e.g. word types). A design with controls (fixed effects) but no unit is
                tested the same way with one cluster per sample (HC2)
    paired      row i of group A is paired with row i of group B: the paired t; the null flips signs
    occurrence  every row independent: Welch's t (binary) or the Pearson / partial correlation
                (continuous); the null permutes rows
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from lamina.stats.checks import check_activations, is_constant, paired_halves
from lamina.stats.clustered import (
    ClusterDesign,
    LabelExplainedError,
    cluster_codes,
    cluster_ols,
    prepare_columns,
    singletons,
    slope_tests,
)
from lamina.stats.neuron_tests import contrast_tests, correlation_tests, r_pvalue, residualise


@dataclass(frozen=True)
class PrimaryDesign:
    """How the primary test treats the samples: kind, pairing, unit(s) of replication, controls."""

    kind: str = "binary"                      # "binary" | "continuous"
    paired: bool = False
    unit_names: tuple = ()                    # e.g. ("word_type", "paragraph"); () = each occurrence
    clusters: tuple = field(default=(), repr=False)   # per-sample unit ids, one array per unit name
    control: np.ndarray | None = field(default=None, repr=False)  # [n, k] covariates / fixed-effect dummies
    control_names: tuple = ()                 # the --control columns (fixed effects) behind `control`
    vcov: str = "CR2"                         # clustered designs: "CR2" (Bell-McCaffrey df) or "CR1" (G-1 df)

    @property
    def level(self) -> str:
        return "paired" if self.paired else ("clustered" if self.clusters else "occurrence")

    def unit(self) -> str:
        """The unit of replication in words."""
        if self.paired:
            return "pair"
        return " x ".join(self.unit_names) if self.clusters else "occurrence (every sample independent)"

    def subset(self, idx: np.ndarray) -> PrimaryDesign:
        """The design restricted to the samples `idx`."""
        return PrimaryDesign(self.kind, self.paired, self.unit_names, tuple(np.asarray(c)[idx] for c in self.clusters),
                             None if self.control is None else self.control[idx], self.control_names, self.vcov)

    @property
    def regression(self) -> bool:
        """Whether the primary test is the cluster-robust slope: units to cluster on, or fixed effects."""
        return not self.paired and bool(self.clusters or self.control_names)

    def cluster_design(self, n: int) -> ClusterDesign | None:
        """The clustering the slope test uses: the units, or one cluster per sample when only controls (fixed
        effects) call for the regression; None for the paired and plain occurrence tests."""
        if not self.regression:
            return None
        return ClusterDesign.build(self.clusters, n) if self.clusters else singletons(n)


def primary_test(X, y, design: PrimaryDesign) -> pd.DataFrame:
    """Per-neuron primary test: columns `t`, `p` (and `coef`, `se`, `df` when clustered; `r`, `partial_r`
    for continuous labels). Constant neurons get NaN."""
    X = check_activations(X)
    if design.paired:
        return contrast_tests(X, y, paired=True)[["t", "p"]]
    if not design.regression:
        if design.kind == "binary":
            return contrast_tests(X, y, mwu=False)[["t", "p"]]
        ct = correlation_tests(X, y, design.control)
        if design.control is not None:
            t = ct["partial_r"] * np.sqrt((len(y) - 2 - design.control.shape[1]) / (1 - ct["partial_r"] ** 2))
            return pd.DataFrame({"t": t, "p": ct["partial_p"], "r": ct["r"], "partial_r": ct["partial_r"]})
        return pd.DataFrame({"t": ct["r"] * np.sqrt((len(y) - 2) / (1 - ct["r"] ** 2)), "p": ct["p"], "r": ct["r"],
                             "partial_r": np.nan})
    clusters = list(design.clusters) or [np.arange(X.shape[0])]   # controls alone: one cluster per sample
    out = cluster_ols(X, np.asarray(y, dtype=float), clusters, design.control, design.vcov)
    constant = is_constant(X)
    df = pd.DataFrame({c: np.where(constant, np.nan, out[c]) for c in ("coef", "se", "t", "p", "df")})
    if design.kind == "continuous":
        df["partial_r"] = out["partial_r"]
        df["r"] = correlation_tests(X, y)["r"].to_numpy()
    df.index.name = "neuron"
    return df


# --------------------------------------------------------------------------- null labellings
def unit_labels(y, clusters0) -> tuple[np.ndarray, np.ndarray]:
    """(per-unit label, per-sample unit code): a binary label's majority, a continuous label's mean."""
    codes = cluster_codes(clusters0)[0]
    y = np.asarray(y, dtype=float)
    sums = np.bincount(codes, weights=y)
    counts = np.bincount(codes)
    return sums / counts, codes


def label_draws(y, design: PrimaryDesign, n: int, seed: int) -> np.ndarray:
    """`n` labellings under the null at the design's unit: [n, n_pairs] signs (paired), else [n, n_samples]
    labels (clustered: the unit-level labels permuted among the first unit's levels; occurrence: rows
    permuted)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if design.paired:
        return rng.choice([-1.0, 1.0], size=(n, int(y.astype(bool).sum())))
    if design.clusters:
        per_unit, codes = unit_labels(y, design.clusters[0])
        if design.kind == "binary":
            per_unit = (per_unit >= 0.5).astype(float)
        return np.array([rng.permutation(per_unit)[codes] for _ in range(n)])
    return np.array([rng.permutation(y) for _ in range(n)], dtype=float)


def null_pvalues(X, y, design: PrimaryDesign, draws: np.ndarray, chunk: int = 50) -> np.ndarray:
    """[n_draws, n_neurons] primary-test p-values of X under each null labelling of `label_draws`. A labelling
    the test cannot use (the label constant, or explained by the controls) gives a row of NaN: a failed draw,
    counted by `lamina.stats.nulls`."""
    X = np.asarray(X, dtype=float)
    out = np.empty((len(draws), X.shape[1]))
    cd = design.cluster_design(X.shape[0])
    if cd is not None:
        Xr, C, k = prepare_columns(X, design.control)
        for i, lab in enumerate(draws):
            try:
                out[i] = slope_tests(Xr, lab, cd, C, k, design.vcov)["p"]
            except LabelExplainedError:
                out[i] = np.nan
        return out
    if design.kind == "continuous":  # each draw is a permuted label: partial out the controls, correlate
        C = design.control
        Xr = X - X.mean(0) if C is None else residualise(X, C)
        Xs = Xr / np.linalg.norm(Xr, axis=0)
        df = len(y) - 2 - (0 if C is None else C.shape[1])
        for s in range(0, len(draws), chunk):
            Z = draws[s:s + chunk].T
            Z = Z - Z.mean(0) if C is None else residualise(Z, C)
            Z = Z / np.linalg.norm(Z, axis=0)
            out[s:s + chunk] = r_pvalue(np.clip(Z.T @ Xs, -1, 1), df)
        return out
    if design.paired:
        pos, neg = paired_halves(X, np.asarray(y, bool))
        d = pos - neg
        data = d / np.maximum(np.sqrt((d ** 2).mean(0)), 1e-300)
    else:
        sd = X.std(0)
        data = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    for s in range(0, len(draws), chunk):
        out[s:s + chunk] = t_pvalues_batch(data, draws[s:s + chunk], design.paired)
    return out


def t_pvalues_batch(X: np.ndarray, labels: np.ndarray, paired: bool) -> np.ndarray:
    """Two-sided Welch (or paired) t p-values for many labelings at once: [n_labelings, n_neurons].

    Unpaired: ``labels`` is a 0/1 matrix [n_labelings, n_samples]. Paired: ``labels`` is a +-1
    sign matrix [n_labelings, n_pairs] applied to the pair differences ``X``.
    """
    with np.errstate(all="ignore"):
        if paired:
            n = X.shape[0]
            mean = labels @ X / n
            var = ((X ** 2).sum(0) - n * mean ** 2) / (n - 1)
            t, df = mean / np.sqrt(var / n), n - 1
        else:
            n1 = labels.sum(1, keepdims=True)
            n0 = X.shape[0] - n1
            s1, q1 = labels @ X, labels @ X ** 2
            s0, q0 = X.sum(0) - s1, (X ** 2).sum(0) - q1
            m1, m0 = s1 / n1, s0 / n0
            v1 = np.maximum(q1 - n1 * m1 ** 2, 0) / (n1 - 1) / n1
            v0 = np.maximum(q0 - n0 * m0 ** 2, 0) / (n0 - 1) / n0
            t = (m1 - m0) / np.sqrt(v1 + v0)
            df = (v1 + v0) ** 2 / (v1 ** 2 / (n1 - 1) + v0 ** 2 / (n0 - 1))
        return np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), df), np.nan)
