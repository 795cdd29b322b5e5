"""Cluster-robust OLS slopes for every neuron at once: the primary test when samples repeat units.

A corpus sample is one occurrence of a word type in a paragraph; occurrences of the same type, and
occurrences in the same paragraph, are not independent. Per neuron j we fit

    activation_j = a + b_j * label (+ controls) + e_j

by OLS and estimate var(b_j) with the cluster-robust sandwich (CRV1): one-way, or two-way
(Cameron, Gelbach & Miller 2011: V_A + V_B - V_AB, V_AB clustered on the intersection), each term with
the small-sample factor G/(G-1) * (n-1)/(n-k), and t with G-1 degrees of freedom, G the smaller cluster
count: exactly statsmodels' `OLS(...).fit(cov_type='cluster', cov_kwds={'groups': ...}, use_t=True)`.

Vectorised over neurons: by Frisch-Waugh-Lovell the slope's row of (D'D)^-1 D' is w = x~ / (x~'x~), x~
the label residualised on [1, controls], so each cluster's score is a sparse indicator matrix times
(w * residuals): a few sparse-dense products per labelling, never a loop over neurons.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from lamina.stats.checks import TooFewSamplesError, check_activations, check_length
from lamina.stats.neuron_tests import residualise


def cluster_codes(*columns) -> list[np.ndarray]:
    """Integer codes 0..G-1 for each cluster column (any hashable values)."""
    import pandas as pd

    return [pd.factorize(pd.Series(np.asarray(c, dtype=object)))[0] for c in columns]


@dataclass(frozen=True)
class ClusterDesign:
    """The cluster indicator matrices of one- or two-way clustering, and their sizes (see module doc)."""

    terms: tuple     # ((indicator [G, n] CSR, sign, G), ...): one term, or A, B and their intersection
    n_clusters: tuple  # G of each clustering (not the intersection)

    @property
    def df(self) -> int:
        return min(self.n_clusters) - 1

    @classmethod
    def build(cls, clusters, n: int) -> "ClusterDesign":
        clusters = [check_length(np.asarray(c), n, "cluster codes") for c in clusters]
        if not 1 <= len(clusters) <= 2:
            raise ValueError(f"give one or two cluster columns; got {len(clusters)}")
        codes = cluster_codes(*clusters)
        if len(codes) == 2:
            codes.append(cluster_codes([f"{a}|{b}" for a, b in zip(*codes)])[0])
        sizes = [int(c.max()) + 1 for c in codes]
        if min(sizes[:2]) < 2:
            raise TooFewSamplesError("a cluster-robust test needs at least 2 clusters per clustering; "
                                     f"got {min(sizes[:2])}")
        signs = [1.0, 1.0, -1.0][:len(codes)]
        terms = tuple((sparse.csr_matrix((np.ones(n), (c, np.arange(n))), shape=(g, n)), s, g)
                      for c, s, g in zip(codes, signs, sizes))
        return cls(terms, tuple(sizes[:2]))


def prepare_columns(X, control):
    """Centre X (or residualise it on [1, control]); also returns k, the regression's parameter count."""
    if control is None:
        return X - X.mean(0), None, 2
    C = np.asarray(control, dtype=float)
    C = C[:, None] if C.ndim == 1 else C
    return residualise(X, C), C, 2 + C.shape[1]


def centre_label(x: np.ndarray, C=None) -> np.ndarray:
    """The label centred (or residualised on [1, C])."""
    return x - x.mean() if C is None else residualise(x[:, None], C)[:, 0]


def slope_tests(Xr: np.ndarray, x: np.ndarray, design: ClusterDesign, C=None, k: int = 2) -> dict:
    """Cluster-robust slope of each column of the prepared (centred / residualised) Xr on label x."""
    n = len(x)
    xr = centre_label(x, C)
    sxx = xr @ xr
    if sxx <= 1e-12 * max(1.0, (x - x.mean()) @ (x - x.mean())):
        raise ValueError("the label has no variation left after the controls")
    b = xr @ Xr / sxx                                   # [m] slopes
    w = xr / sxx                                        # [n] the slope's row of (D'D)^-1 D'
    var, one_way = np.zeros(Xr.shape[1]), []
    for M, sign, G in design.terms:
        S = M @ (w[:, None] * Xr) - (M @ (w * xr))[:, None] * b[None, :]   # [G, m] cluster scores
        v = (G / (G - 1)) * ((n - 1) / (n - k)) * (S ** 2).sum(0)
        var += sign * v
        if sign > 0:
            one_way.append(v)
    if len(design.terms) == 3:  # two-way V can be negative for a neuron: fall back to the larger one-way V
        var = np.where(var > 0, var, np.maximum(*one_way))
    with np.errstate(all="ignore"):
        se = np.sqrt(var)
        t = b / se
    df = design.df
    p = np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), df), np.nan)
    return {"coef": b, "se": se, "t": t, "p": p, "df": df}


def cluster_ols(X, x, clusters, control=None) -> dict:
    """Per-neuron OLS slope of activation on label `x` (+ `control` columns) with one- or two-way
    cluster-robust SEs. `clusters`: a list of one or two arrays of per-sample cluster ids.

    Returns coef, se, t, p (two-sided, t with G-1 df), df and partial_r (the correlation of the neuron with
    the label, both residualised on the controls; the plain correlation without controls).
    """
    X = check_activations(X)
    n = X.shape[0]
    x = check_length(np.asarray(x, dtype=float), n, "label")
    design = ClusterDesign.build(clusters, n)
    Xr, C, k = prepare_columns(X, control)
    out = slope_tests(Xr, x, design, C, k)
    xr = centre_label(x, C)
    with np.errstate(all="ignore"):
        out["partial_r"] = np.clip(xr @ Xr / (np.linalg.norm(xr) * np.linalg.norm(Xr, axis=0)), -1, 1)
    return out
