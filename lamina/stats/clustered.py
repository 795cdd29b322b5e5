"""Cluster-robust OLS slopes for every neuron at once: the primary test when samples repeat units.

A corpus sample is one occurrence of a word type in a paragraph; occurrences of the same type, and
occurrences in the same paragraph, are not independent. Per neuron j we fit

    activation_j = a + b_j * label (+ controls) + e_j

by OLS and estimate var(b_j) with a cluster-robust sandwich: one-way, or two-way (Cameron, Gelbach & Miller
2011: V_A + V_B - V_AB, V_AB clustered on the intersection; a neuron whose sum is not positive takes the
larger one-way V). Two estimators (`vcov`):

    CR2 (default)  bias-reduced linearization (Bell & McCaffrey 2002): cluster g's residuals are scaled by
                   (I - H_gg)^(-1/2), which makes V unbiased when the errors are homoskedastic, and t has
                   Satterthwaite degrees of freedom (Bell-McCaffrey; Imbens & Kolesar 2016) computed under a
                   working model of each neuron's errors (Pustejovsky & Tipton 2018): one variance per arm of
                   a binary label (one variance for a continuous label) and a within-cluster covariance, all
                   estimated from that neuron's residuals without bias (`_variance_components`). The df are
                   then per neuron, vectorised: the design enters through a few traces, the neuron through
                   its 2-3 variance components. Two-way: V is CGM's sum, and the df the smaller of the two
                   one-way terms' df. With one sample per cluster and a binary label, CR2's V is exactly
                   Welch's s1^2/n1 + s0^2/n0 and the df Welch-Satterthwaite's: the test is Welch's t-test.
    CR1            the small-sample factor G/(G-1) * (n-1)/(n-k) on each term and t with G-1 df (G the
                   smaller cluster count): exactly statsmodels' `OLS(...).fit(cov_type='cluster', ...,
                   use_t=True)`. Kept for comparison: it over-rejects with few or unequal clusters, a rare
                   class, or unequal arm variances (tests/test_small_sample.py, docs/TUNING.md).

Vectorised over neurons: by Frisch-Waugh-Lovell the slope's row of (D'D)^-1 D' is w = x~ / (x~'x~), x~ the
label residualised on [1, controls]; each cluster's score is u_g' e_g with u = w (CR1) or u_g = A_g w_g
(CR2), so the scores of all neurons are one sparse indicator matrix times (u * residuals). The CR2 weights
u and the df are computed once per labelling, vectorised over clusters (a batched k x k eigendecomposition).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats

from lamina.stats.checks import TooFewSamplesError, check_activations, check_length
from lamina.stats.neuron_tests import residualise

VCOVS = ("CR2", "CR1")


class LabelExplainedError(ValueError):
    """The label has no variation left after the controls: its slope is not identified."""


def cluster_codes(*columns) -> list[np.ndarray]:
    """Integer codes 0..G-1 for each cluster column (any hashable values)."""
    import pandas as pd

    return [pd.factorize(pd.Series(np.asarray(c, dtype=object)))[0] for c in columns]


@dataclass(frozen=True)
class ClusterDesign:
    """The cluster indicator matrices of one- or two-way clustering, and their sizes (see module doc)."""

    terms: tuple     # ((indicator [G, n] CSR, sign, G, codes [n]), ...): one term, or A, B and their intersection
    n_clusters: tuple  # G of each clustering (not the intersection)

    @property
    def df(self) -> int:
        """CR1's degrees of freedom: G - 1 of the smaller clustering."""
        return min(self.n_clusters) - 1

    @classmethod
    def build(cls, clusters, n: int) -> ClusterDesign:
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
        terms = tuple((sparse.csr_matrix((np.ones(n), (c, np.arange(n))), shape=(g, n)), s, g, c)
                      for c, s, g in zip(codes, signs, sizes))
        return cls(terms, tuple(sizes[:2]))


def singletons(n: int) -> ClusterDesign:
    """One cluster per sample: CR2 is then HC2 (Welch's variance for a binary label)."""
    return ClusterDesign.build([np.arange(n)], n)


def prepare_columns(X, control):
    """Centre X (or residualise it on [1, control]); also returns the control matrix and k, the regression's
    parameter count."""
    if control is None:
        return X - X.mean(0), None, 2
    C = np.asarray(control, dtype=float)
    C = C[:, None] if C.ndim == 1 else C
    return residualise(X, C), C, 2 + C.shape[1]


def centre_label(x: np.ndarray, C=None) -> np.ndarray:
    """The label centred (or residualised on [1, C])."""
    return x - x.mean() if C is None else residualise(x[:, None], C)[:, 0]


# --------------------------------------------------------------------------- CR2 weights and df (design only)
def _orthonormal_design(x: np.ndarray, C) -> np.ndarray:
    """Z [n, r]: an orthonormal basis of the column space of D = [1, x, C] (so H = Z Z')."""
    D = np.column_stack([np.ones(len(x)), x] + ([] if C is None else [C]))
    U, s, _ = np.linalg.svd(D, full_matrices=False)
    return U[:, s > 1e-10 * s[0]]


def _cr2_weights(w: np.ndarray, Z: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """u with u_g = (I - H_gg)^(-1/2) w_g for every cluster g at once.

    H_gg = Z_g Z_g' has rank <= r: with Z_g' Z_g = V diag(lam) V', (I - H_gg)^(-1/2) = I + Z_g V diag(f / lam)
    V' Z_g', f = (1 - lam)^(-1/2) - 1; a direction with lam = 1 (the cluster alone fixes a coefficient) takes
    the Moore-Penrose inverse (f = -1), and lam -> 0 the limit f / lam = 1/2.
    """
    r = Z.shape[1]
    M = np.zeros((G, r, r))
    np.add.at(M, codes, Z[:, :, None] * Z[:, None, :])          # [G, r, r] Z_g' Z_g
    lam, V = np.linalg.eigh(M)
    lam = np.clip(lam, 0.0, 1.0)
    with np.errstate(all="ignore"):
        f = np.where(lam > 1 - 1e-10, -1.0, 1 / np.sqrt(1 - lam) - 1)
        ratio = np.where(lam > 1e-12, f / lam, 0.5)
    tg = np.zeros((G, r))
    np.add.at(tg, codes, Z * w[:, None])                          # [G, r] Z_g' w_g
    coef = np.einsum("gab,gb,gcb,gc->ga", V, ratio, V, tg)        # V diag(ratio) V' t_g
    return w + np.einsum("ia,ia->i", Z, coef[codes])


# A matrix S = diag(d) + U V' on the clusters' index, kept in that form: traces of products cost O(G r^2).
def _trace(S) -> float:
    d, U, V = S
    return float(d.sum() + np.einsum("ga,ga->", U, V))


def _trace_product(S, T) -> float:
    (d1, U1, V1), (d2, U2, V2) = S, T
    return float((d1 * d2).sum() + (d1 * np.einsum("ga,ga->g", U2, V2)).sum()
                 + (d2 * np.einsum("ga,ga->g", U1, V1)).sum() + ((V1.T @ U2) * (U1.T @ V2)).sum())


def _sandwich(d, R, mid, Q):
    """diag(d) - R Q - Q' R' + Q' mid Q, as (d, U, V)."""
    return d, np.hstack([-R, -Q.T, Q.T @ mid]), np.hstack([Q.T, R, Q.T])


def _kernel_sandwiches(u, Z, M, masks) -> list:
    """G' K G for each working-model kernel K, G = (I - H) W (W: u placed in its cluster's column): one per
    row mask (K = diag(mask): the label's arms, or all rows), and, when a cluster has several rows, the
    within-cluster pairs (K = J - I, J the block of ones)."""
    Q = (M @ (Z * u[:, None])).T                                            # [r, G]  Z' W
    out = [_sandwich(M @ (m * u ** 2), M @ (Z * (m * u)[:, None]), Z.T @ (Z * m[:, None]), Q) for m in masks]
    if (np.asarray(M.sum(1)).ravel() > 1).any():
        s, P = M @ u, M @ Z                                                 # F = E G = diag(s) - P Q
        dJ, UJ, VJ = _sandwich(s ** 2, s[:, None] * P, P.T @ P, Q)
        dI, UI, VI = _sandwich(M @ u ** 2, M @ (Z * u[:, None]), np.eye(Z.shape[1]), Q)
        out.append((dJ - dI, np.hstack([UJ, -UI]), np.hstack([VJ, VI])))
    return out


def _variance_components(E: np.ndarray, Z: np.ndarray, M, masks) -> np.ndarray:
    """[n_kernels, m] each neuron's working-model parameters omega from its residuals E [n, m], unbiased under
    the model: the quadratic forms q_c = e' K_c e have E[q_c] = sum_d omega_d tr((I-H) K_c (I-H) K_d), a c x c
    system solved for every neuron at once (the arm variances, and the within-cluster covariance clipped to
    [0, the smallest arm variance])."""
    sizes = np.asarray(M.sum(1)).ravel()
    clustered = (sizes > 1).any()
    ZmZ = [Z.T @ (Z * m[:, None]) for m in masks]
    E2 = E ** 2
    q = list(np.asarray(masks) @ E2)
    if clustered:
        P = M @ Z
        ZjZ = P.T @ P - Z.T @ Z                                           # Z' (J - I) Z
        q.append(((M @ E) ** 2).sum(0) - E2.sum(0))
    c = len(q)
    A = np.zeros((c, c))
    for i, mi in enumerate(masks):  # tr((I-H) K_i (I-H) K_j) = tr(K_i K_j) - 2 tr(Z' K_i K_j Z) + tr(Z'K_iZ Z'K_jZ)
        for j, mj in enumerate(masks):
            A[i, j] = (mi * mj).sum() - 2 * np.trace(Z.T @ (Z * (mi * mj)[:, None])) + (ZmZ[i] * ZmZ[j].T).sum()
        if clustered:  # K_i diagonal, K_J = J - I: tr(K_i K_J) = 0; Z' K_i K_J Z = (M m_i Z)' P - Z' m_i Z
            cross = -2 * np.trace((M @ (Z * mi[:, None])).T @ P - ZmZ[i]) + (ZmZ[i] * ZjZ.T).sum()
            A[i, -1] = A[-1, i] = cross
    if clustered:  # (J - I)^2 = J^2 - 2J + I, J^2 = blocks of n_g J
        jj = (P.T @ (P * sizes[:, None])) - 2 * P.T @ P + Z.T @ Z
        A[-1, -1] = (sizes * (sizes - 1)).sum() - 2 * np.trace(jj) + (ZjZ * ZjZ.T).sum()
    omega = np.linalg.lstsq(A, np.array(q), rcond=None)[0]
    arms = np.maximum(omega[:len(masks)], 0)
    if clustered:
        return np.vstack([arms, np.clip(omega[-1], 0, arms.min(0))])
    return arms


def working_df(u, Z, M, E, masks) -> np.ndarray:
    """Per neuron: the Satterthwaite df of V = sum_g (u_g' e_g)^2 under each neuron's working model
    Omega = sum_c omega_c K_c (arm variances + within-cluster covariance, `_variance_components`):
    df = tr(O Omega)^2 / tr((O Omega)^2), O = G G'. With one row per cluster and a binary label this is
    Welch-Satterthwaite's df exactly."""
    S = _kernel_sandwiches(u, Z, M, masks)
    t1 = np.array([_trace(a) for a in S])
    t2 = np.array([[_trace_product(a, b) for b in S] for a in S])
    w = _variance_components(E, Z, M, masks)                               # [c, m]
    with np.errstate(all="ignore"):
        return (t1 @ w) ** 2 / np.einsum("cm,cd,dm->m", w, t2, w)


# --------------------------------------------------------------------------- the test
def slope_tests(Xr: np.ndarray, x: np.ndarray, design: ClusterDesign, C=None, k: int = 2,
                vcov: str = "CR2") -> dict:
    """Cluster-robust slope of each column of the prepared (centred / residualised) Xr on label x."""
    if vcov not in VCOVS:
        raise ValueError(f"vcov must be one of {VCOVS}; got {vcov!r}")
    n = len(x)
    xr = centre_label(x, C)
    sxx = xr @ xr
    if sxx <= 1e-12 * max(1.0, (x - x.mean()) @ (x - x.mean())):
        raise LabelExplainedError("the label has no variation left after the controls")
    b = xr @ Xr / sxx                                   # [m] slopes
    w = xr / sxx                                        # [n] the slope's row of (D'D)^-1 D'
    Z = _orthonormal_design(x, C) if vcov == "CR2" else None
    binary = np.isin(x, (0, 1)).all()
    masks = [x.astype(float), 1 - x.astype(float)] if binary else [np.ones(n)]
    var, one_way, dfs = np.zeros(Xr.shape[1]), [], []
    E = Xr - xr[:, None] * b[None, :]                                   # [n, m] residuals
    for M, sign, G, codes in design.terms:
        if vcov == "CR2":
            u, factor = _cr2_weights(w, Z, codes, G), 1.0
        else:
            u, factor = w, (G / (G - 1)) * ((n - 1) / (n - k))
        S = M @ (u[:, None] * E)                                          # [G, m] cluster scores u_g' e_g
        v = factor * (S ** 2).sum(0)
        var += sign * v
        if sign > 0:
            one_way.append(v)
            if vcov == "CR2":
                dfs.append(working_df(u, Z, M, E, masks))
    if len(design.terms) == 3:  # two-way V can be negative for a neuron: fall back to the larger one-way V
        var = np.where(var > 0, var, np.maximum(*one_way))
    with np.errstate(all="ignore"):
        se = np.sqrt(var)
        t = b / se
    df = np.minimum.reduce(dfs) if vcov == "CR2" else design.df
    p = np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), df), np.nan)
    return {"coef": b, "se": se, "t": t, "p": p, "df": df}


def cluster_ols(X, x, clusters, control=None, vcov: str = "CR2") -> dict:
    """Per-neuron OLS slope of activation on label `x` (+ `control` columns) with one- or two-way
    cluster-robust SEs. `clusters`: a list of one or two arrays of per-sample cluster ids.

    Returns coef, se, t, p (two-sided; CR2: Bell-McCaffrey df, CR1: G-1 df), df and partial_r (the correlation
    of the neuron with the label, both residualised on the controls; the plain correlation without controls).
    """
    X = check_activations(X)
    n = X.shape[0]
    x = check_length(np.asarray(x, dtype=float), n, "label")
    design = ClusterDesign.build(clusters, n)
    Xr, C, k = prepare_columns(X, control)
    out = slope_tests(Xr, x, design, C, k, vcov)
    out["partial_r"] = partial_r(Xr, x, C)
    return out


def partial_r(Xr: np.ndarray, x: np.ndarray, C=None) -> np.ndarray:
    """Correlation of each prepared column with the label, both residualised on [1, C]."""
    xr = centre_label(x, C)
    with np.errstate(all="ignore"):
        return np.clip(xr @ Xr / (np.linalg.norm(xr) * np.linalg.norm(Xr, axis=0)), -1, 1)
