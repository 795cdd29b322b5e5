"""Probing: how well do single neurons, or the top-k neurons of a layer, decode a binary label?

``logistic_tests`` fits one-neuron logistic regressions for all neurons at once (vectorised
Newton/IRLS) with Wald tests and cross-validated decoding; ``sparse_probe`` ranks neurons on
training folds only (no leakage) and scores a logistic probe on the top k. Both are also
reachable as ``lamina.stats.logistic_tests`` / ``lamina.stats.sparse_probe``; conventions
(X, y, DataFrame layout) are those of :mod:`lamina.stats`.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special, stats
from sklearn.feature_selection import f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lamina.stats import MIN_GROUP_SIZE, _check_binary, _check_X, _frame, _is_constant

__all__ = ["logistic_tests", "sparse_probe", "rank_neurons"]


# --------------------------------------------------------------------------- one-neuron logistic
def _separable(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where a threshold on the column separates the classes (complete or quasi-complete)."""
    x0, x1 = x[~y], x[y]
    return (x0.max(0) <= x1.min(0)) | (x1.max(0) <= x0.min(0))


def _loglik(b0, b1, x, yf):
    eta = b0 + b1 * x
    return (yf[:, None] * eta - np.logaddexp(0.0, eta)).sum(0)


def _newton_terms(b0, b1, x, yf):
    """Gradient and Hessian entries of the log-likelihood for each column's (b0, b1)."""
    prob = special.expit(b0 + b1 * x)
    w, resid = prob * (1 - prob), yf[:, None] - prob
    h00, h01, h11 = w.sum(0), (w * x).sum(0), (w * x * x).sum(0)
    return resid.sum(0), (resid * x).sum(0), h00, h01, h11, h00 * h11 - h01 ** 2


def _fit_logit_1d(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-10):
    """Vectorised Newton-Raphson (with step halving) for intercept + slope logistic fits, one per column.

    Columns must be non-separable and non-constant. Returns b0, b1, se(b1), converged.
    """
    yf = y.astype(float)
    m = x.shape[1]
    b0, b1 = np.full(m, special.logit(yf.mean())), np.zeros(m)
    ll = _loglik(b0, b1, x, yf)
    converged, failed = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            act = np.nonzero(~(converged | failed))[0]
            if act.size == 0:
                break
            xa, ba0, ba1, lla = x[:, act], b0[act], b1[act], ll[act]
            g0, g1, h00, h01, h11, det = _newton_terms(ba0, ba1, xa, yf)
            s0, s1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
            new_ll = _loglik(ba0 + s0, ba1 + s1, xa, yf)
            for _halving in range(30):  # concave objective: halve until the likelihood does not drop
                worse = new_ll < lla - 1e-12 * np.abs(lla)
                if not worse.any():
                    break
                s0, s1 = np.where(worse, s0 / 2, s0), np.where(worse, s1 / 2, s1)
                new_ll = np.where(worse, _loglik(ba0 + s0, ba1 + s1, xa, yf), new_ll)
            b0[act], b1[act], ll[act] = ba0 + s0, ba1 + s1, new_ll
            converged[act] = np.maximum(np.abs(s0), np.abs(s1)) < tol
            failed[act] = ~np.isfinite(new_ll)
        _, _, h00, _, _, det = _newton_terms(b0, b1, x, yf)
        se = np.sqrt(h00 / det)  # sqrt of [inverse Fisher information]_11
    return b0, b1, se, converged & ~failed


def _auc_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of scores for labels y (ties count 1/2, as sklearn)."""
    ranks = stats.rankdata(scores, axis=0)
    n1, n0 = y.sum(), (~y).sum()
    return (ranks[y].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _fold_predictions(x_tr, y_tr, x_te):
    """Fit one-neuron logistic models on a train fold; return held-out decision values per column.

    Separable columns (no MLE) use the limit model: threshold at the midpoint of the gap.
    Columns constant on the train fold fall back to the intercept-only model.
    """
    m = x_tr.shape[1]
    const = _is_constant(x_tr)
    sep = _separable(x_tr, y_tr) & ~const
    fit = ~(sep | const)
    eta = np.empty((x_te.shape[0], m))
    if fit.any():
        b0, b1, _, _ = _fit_logit_1d(x_tr[:, fit], y_tr)
        eta[:, fit] = b0 + b1 * x_te[:, fit]
    if sep.any():
        xs = x_tr[:, sep]
        up = xs[~y_tr].max(0) <= xs[y_tr].min(0)  # positives lie above the threshold
        lo_gap = np.where(up, xs[~y_tr].max(0), xs[y_tr].max(0))
        hi_gap = np.where(up, xs[y_tr].min(0), xs[~y_tr].min(0))
        eta[:, sep] = np.where(up, 1.0, -1.0) * (x_te[:, sep] - (lo_gap + hi_gap) / 2)
    eta[:, const] = 1.0 if y_tr.mean() > 0.5 else -1.0  # intercept-only: majority class
    return eta


def logistic_tests(X, y, cv: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per-neuron one-variable logistic regression (Wald test + cross-validated decoding) of a binary label.

    The neuron is standardised (z-scored over all samples) before fitting, so ``coef`` is the
    change in log-odds per SD. Columns: ``intercept``, ``coef``, ``se``, ``z``, ``p`` (Wald,
    two-sided; NaN when ``separable`` or ``constant`` or not ``converged``); ``separable`` (a
    threshold perfectly or quasi-perfectly separates the classes: the MLE does not exist);
    ``constant``; ``converged``; ``cv_balanced_accuracy``, ``cv_auc`` (mean over ``cv``
    stratified shuffled folds of held-out balanced accuracy and ROC AUC; folds from
    ``StratifiedKFold(cv, shuffle=True, random_state=seed)``); ``train_accuracy`` (in-sample
    accuracy of the full-data fit, optimistic: do not report it alone).
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0], min_per_class=max(cv, MIN_GROUP_SIZE))
    m = X.shape[1]
    constant = _is_constant(X)
    sd = np.where(constant, 1.0, X.std(0))
    xs = (X - X.mean(0)) / sd
    separable = _separable(xs, y) & ~constant
    fit = ~(separable | constant)
    intercept, coef, se = (np.full(m, np.nan) for _ in range(3))
    converged = np.zeros(m, dtype=bool)
    if fit.any():
        intercept[fit], coef[fit], se[fit], converged[fit] = _fit_logit_1d(xs[:, fit], y)
    bad = ~converged
    intercept[bad] = coef[bad] = se[bad] = np.nan
    z = coef / se
    p = 2 * stats.norm.sf(np.abs(z))
    train_acc = ((_fold_predictions(xs, y, xs) > 0) == y[:, None]).mean(0)

    # Cross-validation. The logistic model is affine-equivariant, so z-scoring with full-data
    # statistics does not change held-out predictions (no leakage); fits use train folds only.
    bal_acc, auc = np.zeros(m), np.zeros(m)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    for tr, te in folds.split(xs, y):
        eta = _fold_predictions(xs[tr], y[tr], xs[te])
        pred, yt = eta > 0, y[te]
        bal_acc += (pred[yt].mean(0) + (~pred[~yt]).mean(0)) / 2
        auc += _auc_columns(eta, yt)
    return _frame({"intercept": intercept, "coef": coef, "se": se, "z": z, "p": p,
                   "separable": separable, "constant": constant, "converged": converged,
                   "cv_balanced_accuracy": bal_acc / cv, "cv_auc": auc / cv,
                   "train_accuracy": train_acc}, cv=cv, seed=seed)


# --------------------------------------------------------------------------- sparse probe
RANKINGS = ("mean_diff", "anova_f", "l1")
DEFAULT_KS = (1, 2, 4, 8, 16, 32, 64)


def _anova_f(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", UserWarning)  # "Features ... are constant"
        f = f_classif(X, y)[0]
    return np.nan_to_num(f, nan=-np.inf)  # constant neurons rank last


def rank_neurons(X, y, rank_by: str = "mean_diff", l1_C: float = 0.1, seed: int = 0) -> np.ndarray:
    """Order neurons (best first) by how strongly they separate the two classes, for sparse probing.

    ``mean_diff``: |mean(pos) - mean(neg)| in raw activation units (favours high-variance
    neurons); ``anova_f``: one-way ANOVA F (scale-free); ``l1``: |coefficient| of an L1-penalised,
    class-balanced logistic regression on z-scored neurons (``C=l1_C``), ties (e.g. the many zero
    coefficients) broken by ANOVA F.
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0], min_per_class=1)
    if rank_by == "mean_diff":
        return np.argsort(-np.abs(X[y].mean(0) - X[~y].mean(0)), kind="stable")
    if rank_by == "anova_f":
        return np.argsort(-_anova_f(X, y), kind="stable")
    if rank_by == "l1":
        model = make_pipeline(StandardScaler(), LogisticRegression(
            l1_ratio=1.0, solver="liblinear", C=l1_C, class_weight="balanced", random_state=seed))
        coef = np.abs(model.fit(X, y).named_steps["logisticregression"].coef_[0])
        return np.lexsort((-_anova_f(X, y), -coef))
    raise ValueError(f"rank_by must be one of {RANKINGS}; got {rank_by!r}")


def sparse_probe(X, y, ks=DEFAULT_KS, rank_by: str = "mean_diff", cv: int = 5,
                 seed: int = 0) -> pd.DataFrame:
    """Held-out decoding quality of a class-balanced logistic probe on the top-k ranked neurons, for each k.

    For each of ``cv`` stratified shuffled folds, neurons are ranked on the training fold only,
    a ``LogisticRegression(class_weight='balanced')`` (after z-scoring on the training fold) is
    fit on the top k, and F1 (positive class), Matthews correlation and ROC AUC are scored on the
    held-out fold. Columns: ``k``, ``rank_by``, ``f1``, ``mcc``, ``auc`` (means over folds),
    ``auc_std`` (SD over folds), ``neurons`` (the top-k neuron indices ranked on the full data,
    for reporting which neurons the probe uses). ks larger than the number of neurons are dropped.
    """
    X = _check_X(X)
    y = _check_binary(y, X.shape[0], min_per_class=max(cv, MIN_GROUP_SIZE))
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {RANKINGS}; got {rank_by!r}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers; got {ks}")
    ks = [k for k in ks if k <= X.shape[1]]
    if not ks:
        raise ValueError(f"every k exceeds the number of neurons ({X.shape[1]})")
    scores = {k: [] for k in ks}
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    for tr, te in folds.split(X, y):
        order = rank_neurons(X[tr], y[tr], rank_by, seed=seed)
        for k in ks:
            cols = order[:k]
            probe = make_pipeline(StandardScaler(), LogisticRegression(
                class_weight="balanced", max_iter=1000))
            probe.fit(X[tr][:, cols], y[tr])
            pred = probe.predict(X[te][:, cols])
            score = probe.decision_function(X[te][:, cols])
            scores[k].append((f1_score(y[te], pred, zero_division=0.0),
                              matthews_corrcoef(y[te], pred), roc_auc_score(y[te], score)))
    full_order = rank_neurons(X, y, rank_by, seed=seed)
    rows = []
    for k in ks:
        s = np.array(scores[k])
        rows.append({"k": k, "rank_by": rank_by, "f1": s[:, 0].mean(), "mcc": s[:, 1].mean(),
                     "auc": s[:, 2].mean(), "auc_std": s[:, 2].std(ddof=1),
                     "neurons": full_order[:k].tolist()})
    df = pd.DataFrame(rows)
    df.attrs.update(cv=cv, seed=seed)
    return df
