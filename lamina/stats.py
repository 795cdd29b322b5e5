"""Per-neuron statistics for "which neurons respond to a contrast", vectorised over neurons.

Conventions shared by every function:

* ``X`` is a float array ``[n_samples, n_neurons]`` (one layer's activations); it must be
  finite (NaN/inf raise ``ValueError``).
* ``y`` is a binary label (bool or 0/1). ``y == 1`` is the *positive* group ("pos"),
  ``y == 0`` the *negative* group ("neg"); every difference is ``pos - neg``.
* Per-neuron results are pandas DataFrames indexed by neuron (index name ``neuron``).
* Degenerate neurons get NaN statistics and a flag column, never a made-up number.

The probing functions (``logistic_tests``, ``sparse_probe``) live in :mod:`lamina.probes` and are
also reachable as ``lamina.stats.logistic_tests`` / ``lamina.stats.sparse_probe``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats
from sklearn.model_selection import train_test_split
from statsmodels.stats.multitest import multipletests

from lamina.errors import LaminaError

MIN_GROUP_SIZE = 3
_METHOD_NAMES = {"fdr_bh": "BH FDR", "bonferroni": "Bonferroni"}

__all__ = [
    "TooFewSamplesError", "CorrectedPValues", "PermutationNull", "ReplicationSplit",
    "contrast_tests", "correlation_tests", "logistic_tests", "correct_pvalues",
    "permutation_null", "replication_split", "token_identity_control", "sparse_probe",
]


class TooFewSamplesError(LaminaError, ValueError):
    """Raised when a group (or the whole sample) is too small for the requested test."""


# --------------------------------------------------------------------------- validation
def _check_X(X) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_samples, n_neurons], got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("X has no neurons (0 columns)")
    if not np.isfinite(X).all():
        bad = np.unique(np.nonzero(~np.isfinite(X))[1])
        raise ValueError(f"X contains NaN or inf values (in neurons {bad[:10].tolist()}"
                         f"{'...' if bad.size > 10 else ''}); drop or impute them first")
    return X


def _check_length(v, n: int, name: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} entries but X has {n} samples (rows)")
    return v


def _check_binary(y, n: int, min_per_class: int = MIN_GROUP_SIZE, why: str = "") -> np.ndarray:
    y = _check_length(y, n, "y")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"y must be binary (bool or 0/1); got values {np.unique(y)[:5]}")
        y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("y contains a single class; a contrast needs both classes")
    if min(n_pos, n_neg) < min_per_class:
        raise TooFewSamplesError(f"each group needs at least {min_per_class} samples{why}; "
                                 f"got {n_pos} positive and {n_neg} negative")
    return y


def _check_continuous(z, n: int, name: str) -> np.ndarray:
    z = _check_length(z, n, name).astype(float)
    if not np.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf values")
    if np.ptp(z) == 0:
        raise ValueError(f"{name} is constant; a correlation with it is undefined")
    return z


def _frame(columns: dict, **attrs) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    df.index.name = "neuron"
    df.attrs.update(attrs)
    return df


def _is_constant(A: np.ndarray) -> np.ndarray:
    """Per column: all values equal up to floating-point rounding (a few ulps of the magnitude)."""
    return np.ptp(A, axis=0) <= 8 * np.finfo(float).eps * np.abs(A).max(axis=0)


def _paired_halves(X: np.ndarray, y: np.ndarray):
    if y.sum() != (~y).sum():
        raise ValueError(f"paired design needs equal group sizes (the i-th positive row is "
                         f"paired with the i-th negative row); got {y.sum()} and {(~y).sum()}")
    return X[y], X[~y]


# --------------------------------------------------------------------------- contrasts
def contrast_tests(X, y, paired: bool = False) -> pd.DataFrame:
    """Per-neuron two-group contrast (t-test, Mann-Whitney U, Cohen's d) to find responsive neurons.

    Columns: ``mean_pos``, ``mean_neg``, ``diff`` (pos - neg); ``t``, ``p`` (Welch's t-test, or the
    paired t-test when ``paired=True``; two-sided); ``u``, ``p_mwu`` (Mann-Whitney U of pos vs neg,
    two-sided; NaN when paired); ``cohens_d`` (pooled-SD d, or d_z = mean/SD of pair differences
    when paired); ``constant`` (True when the test's SE is zero: both groups constant, or
    constant pair differences; t, p and d are then NaN). With ``paired=True`` the i-th row with
    ``y == 1`` is paired with the i-th row with ``y == 0``.
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0])
    pos, neg = (_paired_halves(X, y) if paired else (X[y], X[~y]))
    mean_pos, mean_neg = pos.mean(0), neg.mean(0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if paired:
            d = pos - neg
            constant = _is_constant(d)
            t, p = stats.ttest_rel(pos, neg, axis=0)
            u = p_mwu = np.full(X.shape[1], np.nan)
            cohens_d = d.mean(0) / d.std(0, ddof=1)
        else:
            constant = _is_constant(pos) & _is_constant(neg)
            t, p = stats.ttest_ind(pos, neg, axis=0, equal_var=False)
            u, p_mwu = stats.mannwhitneyu(pos, neg, axis=0, alternative="two-sided")
            n1, n0 = len(pos), len(neg)
            pooled = np.sqrt(((n1 - 1) * pos.var(0, ddof=1) + (n0 - 1) * neg.var(0, ddof=1))
                             / (n1 + n0 - 2))
            cohens_d = (mean_pos - mean_neg) / pooled
    t, p, cohens_d = (np.where(constant, np.nan, a) for a in (t, p, cohens_d))
    return _frame({"mean_pos": mean_pos, "mean_neg": mean_neg, "diff": mean_pos - mean_neg,
                   "t": t, "p": p, "u": u, "p_mwu": p_mwu, "cohens_d": cohens_d,
                   "constant": constant},
                  test="paired t" if paired else "Welch t", n_pos=len(pos), n_neg=len(neg))


def _residualise(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Residuals of every column of A after least-squares regression on [1, C]."""
    design = np.column_stack([np.ones(len(C)), C])
    coef, *_ = np.linalg.lstsq(design, A, rcond=None)
    return A - design @ coef


def _corr_columns(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    A = A - A.mean(0)
    b = b - b.mean()
    with np.errstate(all="ignore"):
        r = (b @ A) / (np.linalg.norm(A, axis=0) * np.linalg.norm(b))
    return np.clip(r, -1.0, 1.0)


def _r_pvalue(r: np.ndarray, df: int) -> np.ndarray:
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
    X = _check_X(X)
    n = X.shape[0]
    z = _check_continuous(z, n, "z")
    if n < 3:
        raise TooFewSamplesError(f"a correlation test needs at least 3 samples; got {n}")
    constant = _is_constant(X)
    r = np.where(constant, np.nan, _corr_columns(X, z))
    cols = {"r": r, "p": _r_pvalue(r, n - 2), "constant": constant}
    if control is not None:
        C = np.asarray(control, dtype=float)
        C = C[:, None] if C.ndim == 1 else C
        if C.ndim != 2 or C.shape[0] != n:
            raise ValueError(f"control must have {n} rows (one per sample); got shape {C.shape}")
        if not np.isfinite(C).all():
            raise ValueError("control contains NaN or inf values")
        if _is_constant(C).any():
            raise ValueError("a control column is constant; drop it (the intercept is implicit)")
        df = n - 2 - C.shape[1]
        if df < 1:
            raise TooFewSamplesError(f"a partial correlation with {C.shape[1]} covariate(s) "
                                     f"needs at least {3 + C.shape[1]} samples; got {n}")
        Xr, zr = _residualise(X, C), _residualise(z[:, None], C)[:, 0]
        if np.linalg.norm(zr) <= 1e-12 * np.linalg.norm(z - z.mean()):
            raise ValueError("z is fully explained by control; partial correlation undefined")
        explained = np.linalg.norm(Xr, axis=0) <= 1e-12 * np.linalg.norm(X - X.mean(0), axis=0)
        pr = np.where(constant | explained, np.nan, _corr_columns(Xr, zr))
        cols.update(partial_r=pr, partial_p=_r_pvalue(pr, df))
    return _frame(cols, n=n)


# --------------------------------------------------------------------------- multiple testing
@dataclass
class CorrectedPValues:
    """Multiple-testing-corrected p-values (same shape as the input) and the family they used."""

    p_adjusted: np.ndarray
    reject: np.ndarray
    method: str
    family: str
    alpha: float
    family_sizes: dict
    family_description: str


def correct_pvalues(p, method: str = "fdr_bh", family: str = "layer", layer_index=None,
                    alpha: float = 0.05) -> CorrectedPValues:
    """Correct p-values (BH FDR or Bonferroni) over a stated family: each layer, or the whole model.

    ``p`` may be 1-D (then ``layer_index``, same length, gives each neuron's layer when
    ``family='layer'``) or 2-D ``[n_layers, n_neurons]`` (rows are layers unless ``layer_index``
    is given). NaN p-values are left out of every family and stay NaN (reject=False).
    """
    if method not in _METHOD_NAMES:
        raise ValueError(f"method must be one of {sorted(_METHOD_NAMES)}; got {method!r}")
    if family not in ("layer", "model"):
        raise ValueError(f"family must be 'layer' or 'model'; got {family!r}")
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if ((flat[ok] < 0) | (flat[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    if family == "model":
        groups = np.zeros(flat.size, dtype=int)
    elif layer_index is not None:
        groups = np.asarray(layer_index).ravel()
        if groups.size != flat.size:
            raise ValueError(f"layer_index has {groups.size} entries but p has {flat.size}")
    elif p.ndim == 2:
        groups = np.repeat(np.arange(p.shape[0]), p.shape[1])
    else:
        raise ValueError("family='layer' needs layer_index (or a 2-D p of [n_layers, n_neurons])")
    adjusted, reject = np.full(flat.size, np.nan), np.zeros(flat.size, dtype=bool)
    sizes = {}
    for g in np.unique(groups):
        idx = np.nonzero((groups == g) & ok)[0]
        sizes[g.item() if hasattr(g, "item") else g] = idx.size
        if idx.size:
            reject[idx], adjusted[idx], _, _ = multipletests(flat[idx], alpha=alpha, method=method)
    counts = sorted(set(sizes.values()))
    n_txt = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0] if counts else 0)
    scope = (f"neurons of each layer ({len(sizes)} layers)" if family == "layer"
             else "neurons of the whole model")
    desc = f"{_METHOD_NAMES[method]} over {n_txt} {scope}, alpha={alpha:g}"
    return CorrectedPValues(adjusted.reshape(p.shape), reject.reshape(p.shape), method, family,
                            alpha, sizes, desc)


def _count_significant(p: np.ndarray, alpha: float, method: str) -> int:
    return int(correct_pvalues(p, method=method, family="model", alpha=alpha).reject.sum())


# --------------------------------------------------------------------------- permutation null
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


def _t_pvalues_batch(X: np.ndarray, labels: np.ndarray, paired: bool) -> np.ndarray:
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


def permutation_null(X, y, n_permutations: int = 200, alpha: float = 0.05, method: str = "fdr_bh",
                     seed: int = 0, paired: bool = False) -> PermutationNull:
    """Null distribution of the count of significant neurons under label permutation, to calibrate it.

    Significance is the t-test of :func:`contrast_tests` (Welch, or paired) corrected with
    ``method`` over all neurons passed in. Unpaired: labels are permuted across samples.
    Paired: labels are swapped within each pair (random sign flips of the pair differences).
    Neurons with NaN observed p (constant) are left out of every count.
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0])
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    observed_p = contrast_tests(X, y, paired=paired)["p"].to_numpy()
    keep = ~np.isnan(observed_p)
    if not keep.any():
        raise ValueError("no neuron has a defined t-test (all are constant within groups)")
    observed = _count_significant(observed_p[keep], alpha, method)
    rng = np.random.default_rng(seed)
    Xk = X[:, keep]
    if paired:
        pos, neg = _paired_halves(Xk, y)
        data = pos - neg
        data = data / np.maximum(np.sqrt((data ** 2).mean(0)), 1e-300)  # t is scale-free
        labels = rng.choice([-1.0, 1.0], size=(n_permutations, data.shape[0]))
    else:
        sd = Xk.std(0)
        data = (Xk - Xk.mean(0)) / np.where(sd > 0, sd, 1.0)  # t is scale-free; stabler sums
        labels = np.array([rng.permutation(y) for _ in range(n_permutations)], dtype=float)
    null = np.zeros(n_permutations, dtype=int)
    for start in range(0, n_permutations, 50):  # batches keep memory at 50 x n_neurons
        P = _t_pvalues_batch(data, labels[start:start + 50], paired)
        null[start:start + 50] = [_count_significant(row, alpha, method) for row in P]
    band = tuple(float(v) for v in np.percentile(null, [2.5, 97.5]))
    p_value = (1 + np.sum(null >= observed)) / (1 + n_permutations)
    return PermutationNull(observed, null, band, float(p_value), alpha, method, paired)


# --------------------------------------------------------------------------- replication
@dataclass
class ReplicationSplit:
    """Agreement of Welch t-maps computed on two disjoint random halves of the samples."""

    pearson_r: float
    spearman_rho: float
    jaccard: float  # |sig_a & sig_b| / |sig_a | sig_b|; NaN when neither half has a hit
    n_significant: tuple  # (half a, half b)
    n_overlap: int
    t_a: np.ndarray
    t_b: np.ndarray
    halves: tuple  # sample indices of (half a, half b)


def replication_split(X, y, seed: int = 0, alpha: float = 0.05,
                      method: str = "fdr_bh") -> ReplicationSplit:
    """Compare Welch t-maps of two stratified random halves of the samples, to check the map replicates.

    Significant sets use ``method`` at ``alpha`` over all neurons within each half. Correlations
    use neurons with a finite t in both halves.
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0], 2 * MIN_GROUP_SIZE, " (3 in each half)")
    a, b = train_test_split(np.arange(len(y)), test_size=0.5, stratify=y, random_state=seed)
    ra, rb = contrast_tests(X[a], y[a]), contrast_tests(X[b], y[b])
    ta, tb = ra["t"].to_numpy(), rb["t"].to_numpy()
    ok = np.isfinite(ta) & np.isfinite(tb)
    if ok.sum() < 3:
        raise TooFewSamplesError("replication needs at least 3 neurons with a finite t in both "
                                 "halves")
    sa = correct_pvalues(ra["p"].to_numpy(), method, "model", alpha=alpha).reject
    sb = correct_pvalues(rb["p"].to_numpy(), method, "model", alpha=alpha).reject
    union = int((sa | sb).sum())
    overlap = int((sa & sb).sum())
    return ReplicationSplit(
        pearson_r=float(stats.pearsonr(ta[ok], tb[ok])[0]),
        spearman_rho=float(stats.spearmanr(ta[ok], tb[ok])[0]),
        jaccard=overlap / union if union else float("nan"),
        n_significant=(int(sa.sum()), int(sb.sum())), n_overlap=overlap,
        t_a=ta, t_b=tb, halves=(np.sort(a), np.sort(b)))


# --------------------------------------------------------------------------- token control
def token_identity_control(X, token_ids) -> pd.DataFrame:
    """Per-neuron variance explained by token identity alone (ANOVA eta squared): a lexical confound check.

    Columns: ``eta_squared`` = 1 - within-token SS / total SS; ``epsilon_squared`` (the
    bias-adjusted version, like adjusted R^2: ~0 for noise even with many tokens; NaN when every
    token occurs once); ``f``, ``p`` (one-way ANOVA F test); ``constant`` (zero variance: all NaN).
    Note eta squared is inflated when many tokens occur only once; prefer epsilon squared then.
    """
    X = _check_X(X)
    n = X.shape[0]
    tokens = _check_length(token_ids, n, "token_ids")
    _, codes, counts = np.unique(tokens, return_inverse=True, return_counts=True)
    codes, k = codes.ravel(), counts.size
    if k < 2:
        raise ValueError("token_ids has a single distinct token; identity explains nothing")
    one_hot = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(k, n))
    token_means = (one_hot @ X) / counts[:, None]
    ss_within = ((X - token_means[codes]) ** 2).sum(0)
    ss_total = ((X - X.mean(0)) ** 2).sum(0)
    ss_between, df_w = ss_total - ss_within, n - k
    constant = _is_constant(X)
    nan = np.full(X.shape[1], np.nan)
    with np.errstate(all="ignore"):
        eta = 1.0 - ss_within / ss_total
        eps = 1.0 - (ss_within / df_w) / (ss_total / (n - 1)) if df_w > 0 else nan
        f = (ss_between / (k - 1)) / (ss_within / df_w) if df_w > 0 else nan
        p = stats.f.sf(f, k - 1, df_w) if df_w > 0 else nan
    eta, eps, f, p = (np.where(constant, np.nan, a) for a in (eta, eps, f, p))
    return _frame({"eta_squared": eta, "epsilon_squared": eps, "f": f, "p": p,
                   "constant": constant}, n_tokens=k)


def __getattr__(name):
    """Expose the probing functions of :mod:`lamina.probes` (lazily: probes imports this module)."""
    if name in ("logistic_tests", "sparse_probe"):
        from lamina import probes

        return getattr(probes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
