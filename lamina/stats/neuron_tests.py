"""Occurrence-level per-neuron tests, vectorised over neurons: Welch / paired t, Mann-Whitney U, Cohen's d
and d_z, Pearson and partial correlation, and the token-identity share (conventions: `lamina.stats.checks`).

These treat every row as an independent sample. For corpus samples, whose word types and paragraphs
repeat, the primary test is the cluster-robust one of `lamina.stats.clustered`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse, stats

from lamina.stats.checks import (
    TooFewSamplesError,
    check_activations,
    check_binary,
    check_continuous,
    check_length,
    is_constant,
    neuron_frame,
    paired_halves,
)


def contrast_tests(X, y, paired: bool = False, mwu: bool = True) -> pd.DataFrame:
    """Per-neuron two-group contrast (t-test, Mann-Whitney U, Cohen's d) to find responsive neurons.

    Columns: ``mean_pos``, ``mean_neg``, ``diff`` (pos - neg); ``t``, ``p`` (Welch's t-test, or the
    paired t-test when ``paired=True``; two-sided); ``u``, ``p_mwu`` (Mann-Whitney U of pos vs neg,
    two-sided; NaN when paired); ``cohens_d`` (d: the difference over the pooled SD of the two groups;
    for pairs the SD averaged over the two conditions, d_av); ``cohens_dz`` (d_z = mean / SD of the pair
    differences; NaN when unpaired); ``mwu=False`` skips the Mann-Whitney U (NaN; it dominates the cost).
    ``constant`` (True when the test's SE is zero: both groups constant, or
    constant pair differences; t, p and d are then NaN). With ``paired=True`` the i-th row with
    ``y == 1`` is paired with the i-th row with ``y == 0``.
    """
    X = check_activations(X)
    y = check_binary(y, X.shape[0])
    pos, neg = (paired_halves(X, y) if paired else (X[y], X[~y]))
    mean_pos, mean_neg = pos.mean(0), neg.mean(0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if paired:
            d = pos - neg
            constant = is_constant(d)
            t, p = stats.ttest_rel(pos, neg, axis=0)
            u = p_mwu = np.full(X.shape[1], np.nan)
            cohens_dz = d.mean(0) / d.std(0, ddof=1)
            cohens_d = (mean_pos - mean_neg) / np.sqrt((pos.var(0, ddof=1) + neg.var(0, ddof=1)) / 2)
        else:
            constant = is_constant(pos) & is_constant(neg)
            t, p = stats.ttest_ind(pos, neg, axis=0, equal_var=False)
            u, p_mwu = (stats.mannwhitneyu(pos, neg, axis=0, alternative="two-sided") if mwu
                        else (np.full(X.shape[1], np.nan),) * 2)
            n1, n0 = len(pos), len(neg)
            pooled = np.sqrt(((n1 - 1) * pos.var(0, ddof=1) + (n0 - 1) * neg.var(0, ddof=1))
                             / (n1 + n0 - 2))
            cohens_d = (mean_pos - mean_neg) / pooled
            cohens_dz = np.full(X.shape[1], np.nan)
    t, p, cohens_d, cohens_dz = (np.where(constant, np.nan, a) for a in (t, p, cohens_d, cohens_dz))
    return neuron_frame({"mean_pos": mean_pos, "mean_neg": mean_neg, "diff": mean_pos - mean_neg,
                   "t": t, "p": p, "u": u, "p_mwu": p_mwu, "cohens_d": cohens_d, "cohens_dz": cohens_dz,
                   "constant": constant},
                  test="paired t" if paired else "Welch t", n_pos=len(pos), n_neg=len(neg))


def residualise(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Residuals of every column of A after least-squares regression on [1, C]."""
    design = np.column_stack([np.ones(len(C)), C])
    coef, *_ = np.linalg.lstsq(design, A, rcond=None)
    return A - design @ coef


def corr_columns(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    A = A - A.mean(0)
    b = b - b.mean()
    with np.errstate(all="ignore"):
        r = (b @ A) / (np.linalg.norm(A, axis=0) * np.linalg.norm(b))
    return np.clip(r, -1.0, 1.0)


def r_pvalue(r: np.ndarray, df: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        t = r * np.sqrt(df / (1.0 - r ** 2))
    return 2 * stats.t.sf(np.abs(t), df)


def correlation_tests(X, z, control=None) -> pd.DataFrame:
    """Per-neuron Pearson (optionally partial) correlation with a continuous label: graded responses.

    Columns: ``r``, ``p`` (Pearson, two-sided, t-distribution with n-2 df, equal to
    ``scipy.stats.pearsonr``); ``constant`` (neuron has zero variance: r, p NaN). With ``control``
    (1-D, or 2-D with k covariates) also ``partial_r``, ``partial_p``: the correlation of the
    residuals of X and z after regressing each on [1, control], p from t with n-2-k df
    (n-3 for one covariate); NaN where the neuron is fully explained by the covariates.
    """
    X = check_activations(X)
    n = X.shape[0]
    z = check_continuous(z, n, "z")
    if n < 3:
        raise TooFewSamplesError(f"a correlation test needs at least 3 samples; got {n}")
    constant = is_constant(X)
    r = np.where(constant, np.nan, corr_columns(X, z))
    cols = {"r": r, "p": r_pvalue(r, n - 2), "constant": constant}
    if control is not None:
        C = np.asarray(control, dtype=float)
        C = C[:, None] if C.ndim == 1 else C
        if C.ndim != 2 or C.shape[0] != n:
            raise ValueError(f"control must have {n} rows (one per sample); got shape {C.shape}")
        if not np.isfinite(C).all():
            raise ValueError("control contains NaN or inf values")
        if is_constant(C).any():
            raise ValueError("a control column is constant; drop it (the intercept is implicit)")
        df = n - 2 - C.shape[1]
        if df < 1:
            raise TooFewSamplesError(f"a partial correlation with {C.shape[1]} covariate(s) "
                                     f"needs at least {3 + C.shape[1]} samples; got {n}")
        Xr, zr = residualise(X, C), residualise(z[:, None], C)[:, 0]
        if np.linalg.norm(zr) <= 1e-12 * np.linalg.norm(z - z.mean()):
            raise ValueError("z is fully explained by control; partial correlation undefined")
        explained = np.linalg.norm(Xr, axis=0) <= 1e-12 * np.linalg.norm(X - X.mean(0), axis=0)
        pr = np.where(constant | explained, np.nan, corr_columns(Xr, zr))
        cols.update(partial_r=pr, partial_p=r_pvalue(pr, df))
    return neuron_frame(cols, n=n)




def token_identity_control(X, token_ids) -> pd.DataFrame:
    """Per-neuron variance explained by token identity alone (ANOVA eta squared): a lexical confound check.

    Columns: ``eta_squared`` = 1 - within-token SS / total SS; ``epsilon_squared`` (the
    bias-adjusted version, like adjusted R^2: ~0 for noise even with many tokens; NaN when every
    token occurs once); ``f``, ``p`` (one-way ANOVA F test); ``constant`` (zero variance: all NaN).
    Note eta squared is inflated when many tokens occur only once; prefer epsilon squared then.
    """
    X = check_activations(X)
    n = X.shape[0]
    tokens = check_length(token_ids, n, "token_ids")
    _, codes, counts = np.unique(tokens, return_inverse=True, return_counts=True)
    codes, k = codes.ravel(), counts.size
    if k < 2:
        raise ValueError("token_ids has a single distinct token; identity explains nothing")
    one_hot = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(k, n))
    token_means = (one_hot @ X) / counts[:, None]
    ss_within = ((X - token_means[codes]) ** 2).sum(0)
    ss_total = ((X - X.mean(0)) ** 2).sum(0)
    ss_between, df_w = ss_total - ss_within, n - k
    constant = is_constant(X)
    nan = np.full(X.shape[1], np.nan)
    with np.errstate(all="ignore"):
        eta = 1.0 - ss_within / ss_total
        eps = 1.0 - (ss_within / df_w) / (ss_total / (n - 1)) if df_w > 0 else nan
        f = (ss_between / (k - 1)) / (ss_within / df_w) if df_w > 0 else nan
        p = stats.f.sf(f, k - 1, df_w) if df_w > 0 else nan
    eta, eps, f, p = (np.where(constant, np.nan, a) for a in (eta, eps, f, p))
    return neuron_frame({"eta_squared": eta, "epsilon_squared": eps, "f": f, "p": p,
                   "constant": constant}, n_tokens=k)


